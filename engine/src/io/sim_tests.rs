//! Smoke tests of the madsim backend: simulated time, tasks, shards, mesh, TCP and SimDisk.
//! Run with `RUSTFLAGS="--cfg madsim" cargo test -p tern --target-dir /work/target/sim`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use super::*;

/// Runs a `!Send` future as a task of `node` (madsim's `NodeHandle::spawn` wants `Send`).
async fn run_on_node<F, Fut>(node: madsim::runtime::NodeHandle, make: F) -> Fut::Output
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future + 'static,
    Fut::Output: Send + 'static,
{
    let outer = node.spawn(async move { madsim::task::spawn_local(make()).await.unwrap() });
    outer.await.unwrap()
}

#[madsim::test]
async fn simulated_time_tasks_and_timeouts() {
    let start = now();
    let handle = spawn_local(async {
        sleep(Duration::from_secs(3600)).await;
        current_shard()
    });
    assert_eq!(handle.await, 0);
    assert!(start.elapsed() >= Duration::from_secs(3600));
    let late = timeout(Duration::from_secs(1), sleep(Duration::from_secs(10))).await;
    assert_eq!(late, Err(Elapsed));
    assert!(unix_time_ms() > 0);
    let _ = random_u64();
}

#[madsim::test]
async fn shards_are_tasks_with_their_own_index_and_mesh_connects_them() {
    let (sender, receiver) = mesh::channel::<usize>(2);
    let receivers = std::sync::Arc::new(std::sync::Mutex::new(Some(receiver)));
    let outputs = run_shards_async(3, move |shard| {
        let sender = sender.clone();
        let receivers = receivers.clone();
        async move {
            // Tasks spawned by a shard belong to it.
            let spawned = spawn_local(async { current_shard() }).await;
            assert_eq!(spawned, shard);
            if shard == 0 {
                let mut receiver = receivers.lock().unwrap().take().unwrap();
                let first = receiver.recv().await.unwrap();
                let second = receiver.recv().await.unwrap();
                first + second
            } else {
                sender.send(shard * 100).await.unwrap();
                shard
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(outputs, vec![300, 1, 2]);
}

#[madsim::test]
async fn simulated_disk_behind_the_file_api() {
    let sim = SimDisk::new(1);
    let disk = Disk::Simulated(sim.clone());
    disk.create_dir_all(Path::new("/d")).unwrap();
    let options = OpenOptions { create: true, truncate: false };
    let file = disk.open(Path::new("/d/0.log"), options).unwrap();
    file.write_all_at(b"hello".to_vec(), 0).await.0.unwrap();
    file.sync_data().await.unwrap();
    let (result, buf) = file.read_exact_at(Vec::with_capacity(5), 0).await;
    result.unwrap();
    assert_eq!(buf, b"hello");
    sim.crash(CrashMode::Torn);
    assert_eq!(sim.durable_bytes(Path::new("/d/0.log")).unwrap(), b"hello");
}

#[madsim::test]
async fn tcp_echo_between_two_nodes() {
    let handle = madsim::runtime::Handle::current();
    let server_ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let server = handle.create_node().name("server").ip(server_ip).build();
    let client = handle.create_node().name("client").ip([10, 0, 0, 2].into()).build();
    let address = SocketAddr::new(server_ip, 9092);
    let serving = run_on_node(server, move || async move {
        // Two shards of one node bind the same address (SO_REUSEPORT semantics).
        let listener = Listener::bind(address).unwrap();
        let _twin = Listener::bind(address).unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        loop {
            let (result, buf) = stream.read(Vec::with_capacity(64)).await;
            if result.unwrap() == 0 {
                break;
            }
            stream.write_all(buf).await.0.unwrap();
        }
    });
    let serving = madsim::task::spawn(serving);
    let echoed = run_on_node(client, move || async move {
        sleep(Duration::from_millis(10)).await;
        let stream = Stream::connect(address).await.unwrap();
        stream.write_all(b"ping".to_vec()).await.0.unwrap();
        let (result, buf) = stream.read(Vec::with_capacity(64)).await;
        result.unwrap();
        stream.shutdown().unwrap();
        buf
    })
    .await;
    assert_eq!(echoed, b"ping");
    serving.await.unwrap();
}
