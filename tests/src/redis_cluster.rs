//! A Redis Cluster of the test's own: 3 masters and 3 replicas on free loopback ports, each
//! node with an append-only file (fsync always) in a temporary directory, made with
//! `redis-cli --cluster create`, and gone when dropped. Also one plain `redis-server` the same
//! way ([`PrivateRedisNode`]), for the benchmark's one-node reference. It needs the `redis-server` and
//! `redis-cli` binaries (`apt-get install redis-server redis-tools`, which `.ci/env.sh` does).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How many nodes: 3 masters, each with one replica.
pub const NODES: usize = 6;

/// A running cluster.
pub struct PrivateCluster {
    nodes: Vec<Child>,
    /// The nodes' ports, in the order `--cluster create` got them (masters first).
    pub ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl PrivateCluster {
    /// Starts 6 nodes with append-only files and makes them a cluster; waits until every node
    /// says `cluster_state:ok` and every replica is in sync.
    pub fn start() -> Self {
        Self::start_with(true)
    }

    /// [`start`](Self::start), with append-only files (fsync always) only when `aof`.
    pub fn start_with(aof: bool) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ports = free_ports(NODES);
        let nodes = ports
            .iter()
            .map(|&port| {
                let node_dir = dir.path().join(port.to_string());
                std::fs::create_dir(&node_dir).expect("node directory");
                crate::child::without_inherited_fds(&mut Command::new("redis-server"))
                    .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                    .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "3000"])
                    .args(["--cluster-config-file", "nodes.conf"])
                    .args(["--appendonly", if aof { "yes" } else { "no" }])
                    .args(["--appendfsync", "always"])
                    .args(["--save", "", "--dir"])
                    .arg(&node_dir)
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| {
                        panic!(
                            "the Redis Cluster tests start their own redis-server and cannot run \
                             it ({e}): install it (`apt-get install redis-server redis-tools`; \
                             `.ci/env.sh` does)"
                        )
                    })
            })
            .collect();
        let cluster = PrivateCluster {
            nodes,
            ports,
            _dir: dir,
        };
        for &port in &cluster.ports {
            wait_for(&format!("node {port} answers"), || {
                cluster.node(port).ok().map(drop)
            });
        }
        let addresses: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let made = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .unwrap_or_else(|e| {
                panic!("redis-cli cannot run ({e}): install it (`apt-get install redis-tools`)")
            });
        assert!(made.success(), "redis-cli --cluster create: {made}");
        cluster.wait_until_stable();
        cluster
    }

    /// Waits until every node says `cluster_state:ok`, 3 masters cover every slot, and every
    /// replica's link to its master is up.
    pub fn wait_until_stable(&self) {
        wait_for("the cluster to be stable", || {
            let mut masters = 0;
            for &port in &self.ports {
                let mut node = self.node(port).ok()?;
                let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut node).ok()?;
                if !info.contains("cluster_state:ok") {
                    return None;
                }
                let role: String = redis::cmd("INFO")
                    .arg("replication")
                    .query(&mut node)
                    .ok()?;
                if role.contains("role:master") {
                    masters += 1;
                } else if !role.contains("master_link_status:up") {
                    return None;
                }
            }
            (masters == 3).then_some(())
        });
    }

    /// The seed URLs, one per node.
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect()
    }

    /// A cluster client that waits `timeout` for a reply.
    pub fn client(&self, timeout: Duration) -> redis::cluster::ClusterClient {
        redis::cluster::ClusterClient::builder(self.urls())
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .build()
            .expect("a cluster client")
    }

    /// A plain connection to the node on `port`.
    pub fn node(&self, port: u16) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(format!("redis://127.0.0.1:{port}/"))?
            .get_connection_with_timeout(Duration::from_secs(5))
    }

    /// The port of the master serving the slot of `key`.
    pub fn master_of(&self, key: &str) -> u16 {
        // Any node that answers (one may have been killed).
        let mut node = self
            .ports
            .iter()
            .find_map(|&port| self.node(port).ok())
            .expect("a node that answers");
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut node)
            .expect("CLUSTER KEYSLOT");
        let shards: redis::Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut node)
            .expect("CLUSTER SLOTS");
        let redis::Value::Array(ranges) = shards else {
            panic!("CLUSTER SLOTS: {shards:?}")
        };
        for range in ranges {
            let redis::Value::Array(parts) = range else {
                continue;
            };
            let (redis::Value::Int(first), redis::Value::Int(last)) = (&parts[0], &parts[1]) else {
                continue;
            };
            if (*first..=*last).contains(&slot) {
                if let redis::Value::Array(master) = &parts[2] {
                    if let redis::Value::Int(port) = master[1] {
                        return u16::try_from(port).expect("a port");
                    }
                }
            }
        }
        panic!("no master serves slot {slot}")
    }

    /// The masters' ports.
    pub fn masters(&self) -> Vec<u16> {
        self.ports
            .iter()
            .copied()
            .filter(|&port| {
                let mut node = self.node(port).expect("a node");
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query(&mut node)
                    .expect("INFO replication");
                info.contains("role:master")
            })
            .collect()
    }

    /// The port of a replica of the master on `master`.
    pub fn replica_of(&self, master: u16) -> u16 {
        for &port in &self.ports {
            let mut node = self.node(port).expect("a node");
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut node)
                .expect("INFO replication");
            if info.contains("role:slave") && info.contains(&format!("master_port:{master}\r")) {
                return port;
            }
        }
        panic!("master {master} has no replica")
    }

    /// Kills the node on `port` (`SIGKILL`).
    pub fn kill(&mut self, port: u16) {
        let i = self
            .ports
            .iter()
            .position(|&p| p == port)
            .expect("a node's port");
        let _ = self.nodes[i].kill();
        let _ = self.nodes[i].wait();
    }

    /// Waits until the node on `port` says it is a master.
    pub fn wait_until_master(&self, port: u16) {
        wait_for(&format!("{port} to become a master"), || {
            let mut node = self.node(port).ok()?;
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut node)
                .ok()?;
            info.contains("role:master").then_some(())
        });
    }

    /// `CLUSTER FAILOVER` on replica `replica` (a manual failover: the master stops taking
    /// writes, the replica catches up, then takes over); waits until it is a master.
    pub fn fail_over_to(&self, replica: u16) {
        let mut node = self.node(replica).expect("the replica");
        let _: String = redis::cmd("CLUSTER")
            .arg("FAILOVER")
            .query(&mut node)
            .expect("CLUSTER FAILOVER");
        self.wait_until_master(replica);
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.kill();
            let _ = node.wait();
        }
    }
}

/// `n` ports free now whose cluster bus port (+10,000) is free too.
fn free_ports(n: usize) -> Vec<u16> {
    let mut ports = Vec::new();
    let mut held = Vec::new();
    while ports.len() < n {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("its address").port();
        let bus_free = port
            .checked_add(10_000)
            .is_some_and(|bus| TcpListener::bind(("127.0.0.1", bus)).is_ok());
        if bus_free {
            ports.push(port);
        }
        held.push(listener);
    }
    ports
}

/// Polls `ready` every 50 ms until it says yes; panics after 60 s.
fn wait_for(what: &str, mut ready: impl FnMut() -> Option<()>) {
    let started = Instant::now();
    while ready().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "waited 60 s for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One plain `redis-server` (no cluster, no persistence) on a free loopback port, gone when
/// dropped.
pub struct PrivateRedisNode {
    child: Child,
    /// Its port.
    pub port: u16,
}

impl PrivateRedisNode {
    /// Starts it and waits until it answers.
    pub fn start() -> Self {
        let port = free_ports(1)[0];
        let child = crate::child::without_inherited_fds(&mut Command::new("redis-server"))
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run redis-server ({e}): install redis-server"));
        let url = format!("redis://127.0.0.1:{port}/");
        wait_for(&format!("redis-server {port} answers"), || {
            let mut c = redis::Client::open(url.as_str())
                .ok()?
                .get_connection()
                .ok()?;
            redis::cmd("PING").query::<String>(&mut c).ok().map(drop)
        });
        PrivateRedisNode { child, port }
    }
}

impl Drop for PrivateRedisNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
