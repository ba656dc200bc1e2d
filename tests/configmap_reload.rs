//! A Corefile mounted from a ConfigMap, updated the way kubelet updates it, with the real binary:
//! the `Corefile` link points into `..data`, a link to a timestamped directory; an update writes a
//! new timestamped directory, points a `..data_tmp` link at it and renames that over `..data`.
//! With *reload* the server notices within two seconds (it watches the directory), where a poll
//! alone would wait its interval (60 s here); a broken Corefile keeps the running one serving.

mod common;

use std::net::SocketAddr;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::rr::RecordType;

/// A directory laid out as kubelet mounts a ConfigMap with one key, `Corefile`.
struct ConfigMapVolume {
    dir: tempfile::TempDir,
    generation: u32,
    current: PathBuf,
}

impl ConfigMapVolume {
    fn new(corefile: &str) -> ConfigMapVolume {
        let dir = tempfile::tempdir().unwrap();
        let current = Self::write_generation(dir.path(), 1, corefile);
        symlink(current.file_name().unwrap(), dir.path().join("..data")).unwrap();
        symlink("..data/Corefile", dir.path().join("Corefile")).unwrap();
        ConfigMapVolume { dir, generation: 1, current }
    }

    fn write_generation(dir: &Path, generation: u32, corefile: &str) -> PathBuf {
        let ts = dir.join(format!("..2026_12_04_10_00_{generation:02}.000000001"));
        std::fs::create_dir(&ts).unwrap();
        std::fs::write(ts.join("Corefile"), corefile).unwrap();
        ts
    }

    /// kubelet's atomic update (its AtomicWriter): new directory, `..data_tmp` link, rename over
    /// `..data`, old directory removed.
    fn update(&mut self, corefile: &str) {
        self.generation += 1;
        let next = Self::write_generation(self.dir.path(), self.generation, corefile);
        let tmp = self.dir.path().join("..data_tmp");
        symlink(next.file_name().unwrap(), &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.path().join("..data")).unwrap();
        std::fs::remove_dir_all(&self.current).unwrap();
        self.current = next;
    }

    fn corefile(&self) -> PathBuf {
        self.dir.path().join("Corefile")
    }
}

fn corefile(port: u16, address: &str) -> String {
    format!(
        ".:{port} {{\n    bind 127.0.0.1\n    reload 60s\n    hosts {{\n        {address} web.example.org\n    }}\n}}\n"
    )
}

/// The address the server answers for web.example.org, if it answers within 300 ms.
fn address(addr: SocketAddr) -> Option<String> {
    let query = query_message("web.example.org.", RecordType::A).to_vec().unwrap();
    let reply = raw_udp_wait(addr, &query, Duration::from_millis(300))?;
    let m = hickory_proto::op::Message::from_vec(&reply).ok()?;
    m.answers.first().map(|r| r.data.to_string())
}

#[test]
fn a_configmap_update_is_served_within_two_seconds() {
    let port = free_port();
    let mut volume = ConfigMapVolume::new(&corefile(port, "10.0.0.1"));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let conf = volume.corefile();
    let process = Process::spawn(volume.dir.path(), &["-conf", conf.to_str().unwrap()]);
    assert_eq!(eventually(TIMEOUT, || address(addr)).as_deref(), Some("10.0.0.1"), "{:?}", process.lines());

    volume.update(&corefile(port, "10.0.0.2"));
    let swapped = Instant::now();
    let served = eventually(Duration::from_secs(2), || address(addr).filter(|a| a == "10.0.0.2"));
    assert!(served.is_some(), "not served within 2 s; output:\n{}", process.lines().join("\n"));
    let took = swapped.elapsed();
    assert!(took < Duration::from_secs(2), "{took:?}");

    // A broken Corefile: logged with its position, and the running configuration goes on.
    volume.update(&format!(
        ".:{port} {{\n    bind 127.0.0.1\n    reload 60s\n    hosts {{\n        ttl zero\n    }}\n}}\n"
    ));
    let line = process.wait_for_line(Duration::from_secs(2), |l| l.contains("reload failed"));
    assert!(line.contains("Corefile:5:13: hosts: ttl must be 1 to 65535 seconds, got 'zero'"), "{line}");
    assert_eq!(address(addr).as_deref(), Some("10.0.0.2"));

    // And the next good one is taken.
    volume.update(&corefile(port, "10.0.0.3"));
    let served = eventually(Duration::from_secs(2), || address(addr).filter(|a| a == "10.0.0.3"));
    assert!(served.is_some(), "output:\n{}", process.lines().join("\n"));
}
