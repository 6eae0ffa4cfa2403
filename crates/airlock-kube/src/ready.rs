//! Waiting for a sandbox's pod: scheduled, its image pulled, its agent listening. A
//! failure the cluster will not recover from by itself ends the wait at once; one it may
//! (no node fits yet) is reported if the wait runs out.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

/// Where a pod stands, as far as a sandbox is concerned.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Running, with this IP.
    Ready(String),
    /// Will not run: why.
    Failed(String),
    /// Not yet: why, when the cluster says.
    Waiting(Option<String>),
}

/// Image pull failures that retrying will not mend.
const BAD_IMAGE: [&str; 4] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
];

/// Where `pod` stands.
pub(crate) fn standing(pod: &Pod) -> Standing {
    let Some(status) = &pod.status else {
        return Standing::Waiting(None);
    };
    if matches!(status.phase.as_deref(), Some("Failed" | "Succeeded")) {
        let why = status.message.clone().unwrap_or_else(|| "it ended".into());
        return Standing::Failed(format!("the sandbox's pod stopped: {why}"));
    }
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for container in containers {
        let waiting = container.state.as_ref().and_then(|s| s.waiting.as_ref());
        if let Some(waiting) = waiting
            && BAD_IMAGE.contains(&waiting.reason.as_deref().unwrap_or(""))
        {
            return Standing::Failed(format!(
                "the image {:?} cannot be pulled: {}",
                container.image,
                waiting.message.clone().unwrap_or_default()
            ));
        }
    }
    let unschedulable = status.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    });
    if let Some(condition) = unschedulable {
        let why = condition.message.clone().unwrap_or_default();
        return Standing::Waiting(Some(format!("no node can take the sandbox: {why}")));
    }
    match (&status.phase, &status.pod_ip) {
        (Some(phase), Some(ip)) if phase == "Running" && !ip.is_empty() => {
            Standing::Ready(ip.clone())
        }
        _ => Standing::Waiting(None),
    }
}

/// Whether a wait on `pod` is over (it is ready, or will not be).
pub(crate) fn settled(pod: Option<&Pod>) -> bool {
    pod.is_none_or(|pod| !matches!(standing(pod), Standing::Waiting(_)))
}

/// Between checks that the agent answers.
pub(crate) const AGENT_POLL: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({ "metadata": { "name": "p" }, "status": status })).unwrap()
    }

    #[test]
    fn a_running_pod_with_an_ip_is_ready() {
        let ready = pod(json!({ "phase": "Running", "podIP": "10.0.0.7" }));
        assert_eq!(standing(&ready), Standing::Ready("10.0.0.7".into()));
        assert!(settled(Some(&ready)));
    }

    #[test]
    fn a_bad_image_fails_at_once_and_names_the_image() {
        let bad = pod(json!({
            "phase": "Pending",
            "containerStatuses": [{
                "name": "sandbox", "image": "nope:1", "imageID": "", "ready": false,
                "restartCount": 0,
                "state": { "waiting": { "reason": "ImagePullBackOff", "message": "denied" } },
            }],
        }));
        let Standing::Failed(why) = standing(&bad) else {
            panic!("not failed");
        };
        assert!(why.contains("nope:1") && why.contains("denied"), "{why}");
        assert!(settled(Some(&bad)));
    }

    #[test]
    fn an_unschedulable_pod_is_still_waiting_with_the_reason() {
        let waiting = pod(json!({
            "phase": "Pending",
            "conditions": [{ "type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": "0/3 nodes have enough memory" }],
        }));
        let Standing::Waiting(Some(why)) = standing(&waiting) else {
            panic!("not waiting with a reason");
        };
        assert!(why.contains("0/3 nodes"), "{why}");
        assert!(!settled(Some(&waiting)));
    }

    #[test]
    fn a_pod_that_ended_or_vanished_settles_the_wait() {
        let ended = pod(json!({ "phase": "Failed", "message": "OOMKilled" }));
        assert!(matches!(standing(&ended), Standing::Failed(_)));
        assert!(settled(None));
    }
}
