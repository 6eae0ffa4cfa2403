//! Finding the daemon's token: `AIRLOCK_TOKEN`, else the token file in its home.

use airlock_api::default_home;

use crate::Error;

/// `AIRLOCK_TOKEN`, else the token file in the daemon's home.
pub fn token() -> Result<String, Error> {
    if let Ok(token) = std::env::var("AIRLOCK_TOKEN") {
        return Ok(token);
    }
    let file = default_home().join("token");
    std::fs::read_to_string(&file)
        .map(|t| t.trim().to_owned())
        .map_err(|e| {
            Error::Config(format!(
                "no token: set AIRLOCK_TOKEN, or let this user read {} ({e})",
                file.display()
            ))
        })
}
