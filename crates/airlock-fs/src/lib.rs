//! Airlock's confined file engine.
//!
//! Every operation starts from a [`Root`], an open handle on a sandbox's root directory, and
//! resolves paths with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`. The kernel, not a
//! string check, keeps each lookup inside the root: absolute symlinks mean the sandbox's
//! paths, `..` stops at the root, and a component swapped for a symlink between two of our
//! calls still resolves inside. Nothing here knows about HTTP.

mod acting_as;
mod checksum;
mod compose;
mod entry;
mod error;
mod extract;
mod held_path;
mod list;
mod merge;
mod ops;
mod pack;
mod partial;
mod path;
mod pieces;
mod read;
mod remove_tree;
mod reserved;
mod root;
mod sandbox_fs;
mod skip_forward;
mod socket_body;
mod staged;
mod sweep;
#[cfg(test)]
mod test_chain;
mod umask;
mod unpack;
mod walk_dir;
mod watch;
mod whole_tar;
mod write;

pub use checksum::{Checks, Checksums, Hasher, crc_hex};
pub use entry::{Entry, FileKind};
pub use error::{FsError, FsErrorKind, FsResult, WireError};
pub use list::Listing;
pub use path::SandboxPath;
pub use pieces::{PieceReader, Pieces};
pub use remove_tree::remove_tree_in;
pub use root::Root;
pub use sandbox_fs::{FileReader, PartialFile, SandboxFs, WatchFeed};
pub use socket_body::{BodyStopper, Moved, SocketBody};
pub use umask::lost_to_umask;
pub use unpack::{Mtimes, Skipped, UnpackLimits, Unpacked, Unpacking};
pub use watch::{LossyQueue, WatchEvent, WatchKind, Watcher};
pub use whole_tar::{Closable, WholeTar};
pub use write::{FileOwner, Placement, WriteOptions, Written, hex};
