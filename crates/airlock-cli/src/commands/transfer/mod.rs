//! Moving files between this machine and a sandbox: `cp` and `sync`, and the pieces they
//! share (targets, local trees, progress, resumable uploads).

pub mod download;
pub mod local_tree;
pub mod progress;
pub mod resume_state;
pub mod target;
pub mod upload;
pub mod walk_ahead;
