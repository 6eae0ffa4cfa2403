//! The sandbox helpers alone (`__airlock-init`, `__airlock-exec`), in a binary a
//! hundredth of `airlock`'s size: the daemon runs one for every sandbox start and every
//! command, and loading the whole daemon to do it took 1.5 ms more than loading this.

fn main() {
    airlock_sandbox::run_helper_if_requested();
    eprintln!("airlock-helper: the daemon runs this; it takes __airlock-init or __airlock-exec");
    std::process::exit(2);
}
