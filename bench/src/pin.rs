//! CPU pinning of the processes in a pinned cell: the proxy under test on a core of its own,
//! the load generator and the upstream (this process) on the other (`sched_setaffinity(2)` on
//! every thread, as `taskset -a -p` does).

use std::io;

/// The cores of a pinned cell, when the machine has at least two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cores {
    /// Where this process (load generator and upstream) runs.
    pub load: usize,
    /// Where the proxy under test runs.
    pub proxy: usize,
}

impl Cores {
    /// Core 0 for the load, core 1 for the proxy; `None` on a machine with fewer than two.
    pub fn split() -> Option<Self> {
        (online() >= 2).then_some(Self { load: 0, proxy: 1 })
    }
}

/// CPUs online on the machine (not only those this process may use at the moment).
pub fn online() -> usize {
    // SAFETY: sysconf reads a system value and has no other effect.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}

fn set_thread(tid: libc::pid_t, cpus: &[usize]) -> io::Result<()> {
    // SAFETY: `set` is a plain bit set initialised by CPU_ZERO; sched_setaffinity reads
    // `size_of::<cpu_set_t>()` bytes of it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        if libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Confines every thread of `pid` to `cpus` (threads it starts later inherit it).
pub fn pin(pid: u32, cpus: &[usize]) -> io::Result<()> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))?;
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        match set_thread(tid, cpus) {
            Ok(()) => {}
            // A thread that ended since the listing.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Every CPU of the machine (what an unpinned process may use).
pub fn all() -> Vec<usize> {
    (0..online()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_thread_reports_the_core_it_was_given_and_can_be_unpinned() {
        let child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        pin(child.id(), &[0]).unwrap();
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        let allowed = status.lines().find(|l| l.starts_with("Cpus_allowed_list:")).unwrap();
        assert_eq!(allowed.split_whitespace().nth(1), Some("0"), "{allowed}");
        pin(child.id(), &all()).unwrap();
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        let allowed = status.lines().find(|l| l.starts_with("Cpus_allowed_list:")).unwrap();
        let expected = if online() == 1 { "0".to_owned() } else { format!("0-{}", online() - 1) };
        assert_eq!(allowed.split_whitespace().nth(1), Some(expected.as_str()), "{allowed}");
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
    }
}
