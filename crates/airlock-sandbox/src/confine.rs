//! What a sandboxed command runs under, applied by the exec helper right before `execve`:
//! no capabilities (bounding set dropped, then uid/gid 1000), no_new_privs, a Landlock
//! ruleset (read and execute everywhere, write only where the sandbox user's data lives)
//! and a seccomp filter denying the syscalls that reach the kernel's attack surface.

use std::collections::BTreeMap;
use std::io;

use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, path_beneath_rules,
};
use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};

use crate::sys::cvt;

/// The Landlock ABI we write rules for; newer kernels enforce it, older ones a subset.
const LANDLOCK_ABI: ABI = ABI::V5;

/// Drops every capability for good and becomes `uid`/`gid`.
pub fn drop_privileges(uid: u32, gid: u32) -> io::Result<()> {
    // The bounding set must go while we still hold CAP_SETPCAP, i.e. before setuid.
    for cap in 0..=last_cap() {
        // SAFETY: prctl with integer arguments only.
        cvt(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) }.into())?;
    }
    // SAFETY: integer-only calls; setgroups with a null list and size 0 clears the groups.
    unsafe {
        cvt(libc::setgroups(0, std::ptr::null()).into())?;
        cvt(libc::setresgid(gid, gid, gid).into())?;
        // Leaving uid 0 clears the permitted, effective and ambient sets.
        cvt(libc::setresuid(uid, uid, uid).into())?;
        cvt(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0).into())?;
    }
    Ok(())
}

fn last_cap() -> libc::c_ulong {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Restricts this process (and all it starts) to reading everywhere and writing only in
/// `writable`. Returns whether the kernel enforced it fully.
pub fn apply_landlock(writable: &[&str]) -> io::Result<bool> {
    let all = AccessFs::from_all(LANDLOCK_ABI);
    let status = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)
        .map_err(io::Error::other)?
        .create()
        .map_err(io::Error::other)?
        .add_rules(path_beneath_rules(["/"], AccessFs::from_read(LANDLOCK_ABI)))
        .map_err(io::Error::other)?
        .add_rules(path_beneath_rules(writable, all))
        .map_err(io::Error::other)?
        .restrict_self()
        .map_err(io::Error::other)?;
    Ok(status.ruleset == RulesetStatus::FullyEnforced)
}

/// Syscalls no sandboxed program needs and that widen the kernel surface it can reach:
/// mounts, namespaces, BPF, keyrings, tracing, kexec, modules, clock and swap control,
/// handle-based opens (the "shocker" escape) and userfaultfd.
fn denied_syscalls() -> Vec<libc::c_long> {
    use libc::*;
    vec![
        SYS_mount,
        SYS_umount2,
        SYS_pivot_root,
        SYS_chroot,
        SYS_fsopen,
        SYS_fsconfig,
        SYS_fsmount,
        SYS_fspick,
        SYS_move_mount,
        SYS_open_tree,
        SYS_mount_setattr,
        SYS_setns,
        SYS_bpf,
        SYS_keyctl,
        SYS_add_key,
        SYS_request_key,
        SYS_ptrace,
        SYS_process_vm_readv,
        SYS_process_vm_writev,
        SYS_kexec_load,
        SYS_kexec_file_load,
        SYS_init_module,
        SYS_finit_module,
        SYS_delete_module,
        SYS_swapon,
        SYS_swapoff,
        SYS_reboot,
        SYS_syslog,
        SYS_acct,
        SYS_settimeofday,
        SYS_clock_settime,
        SYS_clock_adjtime,
        SYS_adjtimex,
        SYS_open_by_handle_at,
        SYS_name_to_handle_at,
        SYS_perf_event_open,
        SYS_userfaultfd,
        SYS_quotactl,
        SYS_lookup_dcookie,
        SYS_vhangup,
        SYS_unshare,
        #[cfg(target_arch = "x86_64")]
        SYS_iopl,
        #[cfg(target_arch = "x86_64")]
        SYS_ioperm,
    ]
}

#[cfg(target_arch = "x86_64")]
const ARCH: seccompiler::TargetArch = seccompiler::TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const ARCH: seccompiler::TargetArch = seccompiler::TargetArch::aarch64;

/// Installs the seccomp filters on this thread (inherited by everything it execs).
pub fn apply_seccomp() -> io::Result<()> {
    let mut deny: BTreeMap<i64, Vec<SeccompRule>> =
        denied_syscalls().into_iter().map(|s| (s, vec![])).collect();
    // clone may not make a user namespace (the one namespace an unprivileged process can
    // create, and the door to most kernel exploits); plain fork and threads still work.
    let newuser = libc::CLONE_NEWUSER as u64;
    let clone_rule = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(newuser),
        newuser,
    )
    .and_then(|c| SeccompRule::new(vec![c]))
    .map_err(io::Error::other)?;
    deny.insert(libc::SYS_clone, vec![clone_rule]);
    install(deny, SeccompAction::Errno(libc::EPERM as u32))?;
    // clone3 hides its flags behind a pointer seccomp cannot read. Answering ENOSYS makes
    // libc fall back to clone, whose flags the rule above does check.
    install(
        BTreeMap::from([(libc::SYS_clone3, vec![])]),
        SeccompAction::Errno(libc::ENOSYS as u32),
    )
}

fn install(rules: BTreeMap<i64, Vec<SeccompRule>>, on_match: SeccompAction) -> io::Result<()> {
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, on_match, ARCH)
        .map_err(io::Error::other)?;
    let program: seccompiler::BpfProgram = filter.try_into().map_err(io::Error::other)?;
    seccompiler::apply_filter(&program).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    #[test]
    fn filters_compile() {
        let rules = super::denied_syscalls()
            .into_iter()
            .map(|s| (s, vec![]))
            .collect();
        let filter = seccompiler::SeccompFilter::new(
            rules,
            seccompiler::SeccompAction::Allow,
            seccompiler::SeccompAction::Errno(1),
            super::ARCH,
        )
        .unwrap();
        let program: seccompiler::BpfProgram = filter.try_into().unwrap();
        assert!(program.len() > 40);
    }
}
