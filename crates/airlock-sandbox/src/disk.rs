//! Per-sandbox disk limits: a sparse ext4 image on a loop device, mounted as the
//! sandbox's writable storage. Writers inside (and the file API) get ENOSPC at the limit.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::sys::{self, cvt};

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_FLAGS_DIRECT_IO: u32 = 16;
/// An earlier daemon's mount of the same image may take a moment to go after its
/// processes are killed; mounting one ext4 image twice would corrupt it, so we wait.
const DETACH_PATIENCE: Duration = Duration::from_secs(10);

/// `struct loop_info64` of linux/loop.h.
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` of linux/loop.h.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// Makes a sparse ext4 image of `size_mb` MiB at `image`.
pub fn create_image(image: &Path, size_mb: u64) -> io::Result<()> {
    File::create(image)?.set_len(size_mb * 1024 * 1024)?;
    // No journal: the image is private scratch space and creation stays fast.
    // Root-owned, mode 0755 root directory; reserved blocks 0 so the whole limit is usable.
    let status = Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-O",
            "^has_journal",
            "-E",
            "lazy_itable_init=1,nodiscard",
            "-m",
            "0",
        ])
        .arg(image)
        .status()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("running mkfs.ext4 (install e2fsprogs): {e}"),
            )
        })?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "mkfs.ext4 failed on {}",
            image.display()
        )));
    }
    Ok(())
}

/// Mounts `image` at `target` through a fresh loop device that frees itself on unmount.
pub fn mount_image(image: &Path, target: &Path) -> io::Result<()> {
    wait_until_unattached(image)?;
    let backing = open_backing(image)?;
    let (device, _loop_fd) = attach_loop(&backing)?;
    let target = target
        .to_str()
        .ok_or_else(|| io::Error::other("non-UTF-8 home directory"))?;
    sys::mount(
        &device,
        target,
        "ext4",
        libc::MS_NOSUID | libc::MS_NODEV,
        "",
    )
    // `_loop_fd` closes here; the mount keeps the device, AUTOCLEAR frees it after unmount.
}

/// The image, opened for direct I/O where its filesystem allows it. Through a loop
/// device, every block of a sandbox's files would otherwise be cached twice, once as the
/// sandbox's file and once as the image's, and written back twice: the second copy costs
/// memory and makes writers wait on writeback. With direct I/O the loop device writes
/// straight to the image.
fn open_backing(image: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = |flags: i32| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(flags)
            .open(image)
    };
    match open(libc::O_DIRECT) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => open(0),
        other => other,
    }
}

fn attach_loop(backing: &File) -> io::Result<(String, File)> {
    let control = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")?;
    loop {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
        let number = cvt(unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE) }.into())?;
        let device = format!("/dev/loop{number}");
        let loop_file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&device)?;
        // SAFETY: LoopConfig is plain data; zeroed is a valid starting value.
        let mut config: LoopConfig = unsafe { std::mem::zeroed() };
        config.fd = backing.as_raw_fd() as u32;
        // Direct I/O when the backing file allows it; the kernel quietly keeps buffered
        // I/O when it does not (a filesystem without O_DIRECT, a misaligned block size).
        config.info.lo_flags = LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO;
        // SAFETY: `config` is a valid loop_config that lives across the call.
        let ret = unsafe { libc::ioctl(loop_file.as_raw_fd(), LOOP_CONFIGURE, &config) };
        match cvt(ret.into()) {
            Ok(_) => return Ok((device, loop_file)),
            // Another process took this device between GET_FREE and CONFIGURE: try the next.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Loop devices whose backing file is `image`.
pub fn loops_backed_by(image: &Path) -> Vec<String> {
    let wanted = image.to_string_lossy();
    std::fs::read_dir("/sys/block")
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("loop"))
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("loop/backing_file"))
                        .is_ok_and(|b| b.trim_end().trim_end_matches(" (deleted)") == wanted)
                })
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn wait_until_unattached(image: &Path) -> io::Result<()> {
    let started = Instant::now();
    while !loops_backed_by(image).is_empty() {
        if started.elapsed() > DETACH_PATIENCE {
            return Err(io::Error::other(format!(
                "{} is still attached to a loop device",
                image.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}
