//! Tests of the io boundary: the simulated disk, the executor, files, sockets, mesh channels.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use super::*;

/// A fresh directory under the system temp dir, unique per test and process.
fn temp_dir(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("tern-io-{}-{}", name, std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).unwrap();
    path
}

fn sim_disk_with_dir() -> (SimDisk, Disk) {
    let sim = SimDisk::new(7);
    let disk = Disk::Simulated(sim.clone());
    disk.create_dir_all(Path::new("/data/t-0")).unwrap();
    (sim, disk)
}

const CREATE: OpenOptions = OpenOptions { create: true, truncate: false };

#[test]
fn sim_disk_reads_back_writes_and_lists_sorted() {
    block_on(async {
        let (_sim, disk) = sim_disk_with_dir();
        let file = disk.open(Path::new("/data/t-0/b.log"), CREATE).unwrap();
        disk.open(Path::new("/data/t-0/a.log"), CREATE).unwrap();
        let (result, _) = file.write_all_at(b"hello world".to_vec(), 0).await;
        result.unwrap();
        let (result, buf) = file.read_exact_at(Vec::with_capacity(5), 6).await;
        result.unwrap();
        assert_eq!(buf, b"world");
        let (result, _) = file.read_exact_at(Vec::with_capacity(5), 8).await;
        assert_eq!(result.unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(disk.list_dir(Path::new("/data/t-0")).unwrap(), vec!["a.log", "b.log"]);
        assert_eq!(disk.list_dir(Path::new("/data")).unwrap(), vec!["t-0"]);
        assert_eq!(file.len().unwrap(), 11);
    });
}

/// Listing reads a range of paths: a sibling whose name extends this one ("t-0" and
/// "t-0x", "t-01"), a nested directory's files and the parent itself stay out of it.
#[test]
fn sim_disk_lists_only_direct_children_beside_similar_names() {
    let (_sim, disk) = sim_disk_with_dir();
    for directory in ["/data/t-0x", "/data/t-01", "/data/t-0/nested", "/datb"] {
        disk.create_dir_all(Path::new(directory)).unwrap();
    }
    for file in ["/data/t-0/a.log", "/data/t-0/nested/n.log", "/data/t-01/c.log", "/data/z"] {
        disk.open(Path::new(file), CREATE).unwrap();
    }
    assert_eq!(disk.list_dir(Path::new("/data/t-0")).unwrap(), vec!["a.log", "nested"]);
    assert_eq!(disk.list_dir(Path::new("/data/t-01")).unwrap(), vec!["c.log"]);
    assert_eq!(disk.list_dir(Path::new("/data")).unwrap(), vec!["t-0", "t-01", "t-0x", "z"]);
    assert!(disk.list_dir(Path::new("/data/t-0x")).unwrap().is_empty());
    assert!(disk.list_dir(Path::new("/none")).is_err());
}

#[test]
fn sim_disk_crash_drops_unsynced_keeps_synced() {
    block_on(async {
        let (sim, disk) = sim_disk_with_dir();
        let path = Path::new("/data/t-0/0.log");
        let file = disk.open(path, CREATE).unwrap();
        file.write_all_at(b"durable".to_vec(), 0).await.0.unwrap();
        file.sync_data().await.unwrap();
        file.write_all_at(b"-lost".to_vec(), 7).await.0.unwrap();
        assert_eq!(sim.file_len(path), Some(12));
        sim.crash(CrashMode::DropUnsynced);
        assert_eq!(sim.durable_bytes(path).unwrap(), b"durable");
        // Handles from before the crash are dead.
        assert_eq!(file.len().unwrap_err().raw_os_error(), Some(libc::EBADF));
        let file = disk.open(path, OpenOptions::default()).unwrap();
        assert_eq!(file.len().unwrap(), 7);
    });
}

#[test]
fn sim_disk_wipe_loses_every_file_and_directory_synced_or_not() {
    block_on(async {
        let (sim, disk) = sim_disk_with_dir();
        let path = Path::new("/data/t-0/0.log");
        let file = disk.open(path, CREATE).unwrap();
        file.write_all_at(b"durable".to_vec(), 0).await.0.unwrap();
        file.sync_data().await.unwrap();
        sim.wipe();
        assert!(sim.file_paths().is_empty());
        assert_eq!(sim.used_bytes(), 0);
        assert!(disk.list_dir(Path::new("/data")).is_err(), "the directories are gone too");
        assert_eq!(file.len().unwrap_err().raw_os_error(), Some(libc::EBADF));
        // An empty disk, as good as new.
        disk.create_dir_all(Path::new("/data/t-0")).unwrap();
        let file = disk.open(path, CREATE).unwrap();
        assert_eq!(file.len().unwrap(), 0);
    });
}

#[test]
fn sim_disk_torn_crash_applies_whole_sectors_only() {
    let sim = SimDisk::new(42);
    let disk = Disk::Simulated(sim.clone());
    let path = Path::new("/torn.log");
    block_on(async {
        let file = disk.open(path, CREATE).unwrap();
        file.write_all_at(vec![1u8; 4096], 0).await.0.unwrap();
    });
    sim.crash(CrashMode::Torn);
    let durable = sim.durable_bytes(path).unwrap();
    // Every sector that made it is complete; the file ends at a sector boundary.
    assert_eq!(durable.len() % SECTOR_SIZE_BYTES as usize, 0);
    for sector in durable.chunks(SECTOR_SIZE_BYTES as usize) {
        assert!(sector.iter().all(|&b| b == 1) || sector.iter().all(|&b| b == 0));
    }
}

#[test]
fn sim_disk_failed_sync_returns_eio_and_loses_writes_at_crash() {
    block_on(async {
        let (sim, disk) = sim_disk_with_dir();
        let path = Path::new("/data/t-0/0.log");
        let file = disk.open(path, CREATE).unwrap();
        file.write_all_at(b"abc".to_vec(), 0).await.0.unwrap();
        sim.fail_next_syncs(Path::new("/data"), 1);
        assert_eq!(file.sync_data().await.unwrap_err().raw_os_error(), Some(libc::EIO));
        // Still readable (page cache), and a later successful sync does not persist it.
        let (result, buf) = file.read_at(Vec::with_capacity(3), 0).await;
        assert_eq!((result.unwrap(), &buf[..]), (3, &b"abc"[..]));
        file.sync_data().await.unwrap();
        sim.crash(CrashMode::DropUnsynced);
        assert_eq!(sim.durable_bytes(path).unwrap(), b"");
    });
}

#[test]
fn sim_disk_enospc_writes_nothing() {
    block_on(async {
        let (sim, disk) = sim_disk_with_dir();
        sim.set_capacity_bytes(Some(10));
        let file = disk.open(Path::new("/data/t-0/0.log"), CREATE).unwrap();
        file.write_all_at(vec![7u8; 8], 0).await.0.unwrap();
        let (result, _) = file.write_all_at(vec![7u8; 8], 8).await;
        assert_eq!(result.unwrap_err().raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(file.len().unwrap(), 8);
        assert_eq!(disk.available_space_bytes(Path::new("/data")).unwrap(), 2);
    });
}

#[test]
fn sim_disk_read_faults_and_corruption() {
    block_on(async {
        let (sim, disk) = sim_disk_with_dir();
        let path = Path::new("/data/t-0/0.log");
        let file = disk.open(path, CREATE).unwrap();
        file.write_all_at(vec![0u8; 1024], 0).await.0.unwrap();
        file.sync_data().await.unwrap();
        sim.corrupt_durable(path, 3, 0);
        let (result, buf) = file.read_exact_at(Vec::with_capacity(4), 0).await;
        result.unwrap();
        assert_eq!(buf, [0, 0, 0, 1]);
        sim.fail_reads(path, 512..1024);
        let (result, _) = file.read_at(Vec::with_capacity(16), 600).await;
        assert_eq!(result.unwrap_err().raw_os_error(), Some(libc::EIO));
        let (result, _) = file.read_at(Vec::with_capacity(16), 0).await;
        assert_eq!(result.unwrap(), 16);
    });
}

/// Writes `a` then `b` (each 512 bytes) to a new file and syncs each.
async fn two_synced_writes(disk: &Disk, path: &Path) -> File {
    let file = disk.open(path, CREATE).unwrap();
    for (index, byte) in [b'a', b'b'].into_iter().enumerate() {
        file.write_all_at(vec![byte; 512], index as u64 * 512).await.0.unwrap();
        file.sync_data().await.unwrap();
    }
    file
}

#[test]
fn sim_disk_phantom_write_shows_old_content_after_a_crash_or_eviction() {
    block_on(async {
        let (sim, disk) = sim_disk_with_dir();
        let path = Path::new("/data/t-0/0.log");
        let file = two_synced_writes(&disk, path).await;
        assert_eq!(sim.synced_writes(path), vec![0..512, 512..1024]);
        assert!(sim.phantom_synced_write(path, 0..512));
        assert!(!sim.phantom_synced_write(path, 0..512), "undone once");
        // The page cache still holds the write; the media does not.
        let (result, buf) = file.read_exact_at(Vec::with_capacity(1), 0).await;
        result.unwrap();
        assert_eq!(buf, b"a");
        sim.evict_cache(path);
        let (result, buf) = file.read_exact_at(Vec::with_capacity(1), 0).await;
        result.unwrap();
        assert_eq!(buf, [0]);
        sim.crash(CrashMode::DropUnsynced);
        let durable = sim.durable_bytes(path).unwrap();
        assert_eq!((durable.len(), durable[0], durable[512]), (1024, 0, b'b'));
        assert!(sim.synced_writes(path).is_empty(), "a crash forgets the synced writes");
    });
}

#[test]
fn sim_disk_misdirected_write_lands_elsewhere_and_keeps_the_old_content() {
    block_on(async {
        let (sim, disk) = sim_disk_with_dir();
        let path = Path::new("/data/t-0/0.log");
        let file = two_synced_writes(&disk, path).await;
        file.write_all_at(vec![b'c'; 512], 0).await.0.unwrap();
        file.sync_data().await.unwrap();
        // The first write is overwritten by the third: only the last two can be undone.
        assert_eq!(sim.synced_writes(path), vec![512..1024, 0..512]);
        assert!(!sim.misdirect_synced_write(path, 0..512, 1000), "target beyond the end");
        assert!(sim.misdirect_synced_write(path, 0..512, 512));
        sim.crash(CrashMode::DropUnsynced);
        let durable = sim.durable_bytes(path).unwrap();
        assert_eq!((durable[0], durable[511], durable[512]), (b'a', b'a', b'c'));
    });
}

#[test]
fn sim_disk_misdirected_read_returns_another_offset_once() {
    block_on(async {
        let (sim, disk) = sim_disk_with_dir();
        let path = Path::new("/data/t-0/0.log");
        let file = disk.open(path, CREATE).unwrap();
        let bytes: Vec<u8> = (0..8192u32).map(|index| (index / 512) as u8).collect();
        file.write_all_at(bytes, 0).await.0.unwrap();
        sim.misdirect_next_reads(Path::new("/data"), 1);
        let (result, wrong) = file.read_exact_at(Vec::with_capacity(16), 2048).await;
        result.unwrap();
        assert_ne!(wrong[0], 4, "the armed read came from another sector");
        let (result, right) = file.read_exact_at(Vec::with_capacity(16), 2048).await;
        result.unwrap();
        assert_eq!(right, [4; 16], "a retry reads right");
    });
}

#[test]
fn sim_disk_latency_delays_writes_and_syncs_in_backend_time() {
    block_on(async {
        let (sim, disk) = sim_disk_with_dir();
        let path = Path::new("/data/t-0/0.log");
        let file = disk.open(path, CREATE).unwrap();
        sim.set_latency(DiskLatency { write_us_max: 0, sync_us_max: 20_000 });
        file.write_all_at(vec![1u8; 10], 0).await.0.unwrap();
        let syncing = {
            let file = file.clone();
            spawn_local(async move { file.sync_data().await })
        };
        yield_now().await;
        assert!(sim.has_unsynced(path) || syncing.is_finished());
        syncing.await.unwrap();
        assert!(!sim.has_unsynced(path));
    });
}

#[test]
fn sim_disk_rename_and_remove() {
    let (sim, disk) = sim_disk_with_dir();
    disk.open(Path::new("/data/t-0/a.tmp"), CREATE).unwrap();
    disk.rename(Path::new("/data/t-0/a.tmp"), Path::new("/data/t-0/a")).unwrap();
    assert!(disk.exists(Path::new("/data/t-0/a")));
    assert!(!disk.exists(Path::new("/data/t-0/a.tmp")));
    disk.remove_file(Path::new("/data/t-0/a")).unwrap();
    assert_eq!(sim.file_len(Path::new("/data/t-0/a")), None);
    disk.remove_dir_all(Path::new("/data")).unwrap();
    assert!(!disk.exists(Path::new("/data/t-0")));
    let missing = disk.open(Path::new("/nope/x"), CREATE).err().unwrap();
    assert_eq!(missing.raw_os_error(), Some(libc::ENOENT));
}

#[test]
fn executor_runs_spawned_tasks_sleeps_and_timeouts() {
    block_on(async {
        let start = now();
        let handle = spawn_local(async {
            sleep(Duration::from_millis(20)).await;
            41 + 1
        });
        assert_eq!(handle.await, 42);
        assert!(start.elapsed() >= Duration::from_millis(20));
        let late = timeout(Duration::from_millis(5), sleep(Duration::from_secs(10))).await;
        assert_eq!(late, Err(Elapsed));
        let early = timeout(Duration::from_secs(10), async { 7 }).await;
        assert_eq!(early, Ok(7));
        yield_now().await;
        assert_eq!(current_shard(), 0);
    });
}

#[test]
fn abort_cancels_a_task() {
    block_on(async {
        let flag = Rc::new(std::cell::Cell::new(false));
        let seen = flag.clone();
        let handle = spawn_local(async move {
            sleep(Duration::from_millis(50)).await;
            seen.set(true);
        });
        yield_now().await;
        handle.abort();
        sleep(Duration::from_millis(80)).await;
        assert!(!flag.get());
    });
}

#[test]
fn notify_and_oneshot_wake_tasks() {
    block_on(async {
        let notify = Rc::new(local::Notify::new());
        let waiter = {
            let notify = notify.clone();
            spawn_local(async move { notify.notified().await })
        };
        yield_now().await;
        notify.notify_waiters();
        waiter.await;
        let (sender, receiver) = local::oneshot::<u32>();
        spawn_local(async move { sender.send(5).unwrap() });
        assert_eq!(receiver.await, Ok(5));
        let (sender, receiver) = local::oneshot::<u32>();
        drop(sender);
        assert_eq!(receiver.await, Err(local::Canceled));
    });
}

#[test]
fn os_file_write_read_sync_roundtrip() {
    let directory = temp_dir("roundtrip");
    block_on(async {
        let disk = Disk::Os;
        let path = directory.join("00000000000000000000.log");
        let file = disk.open(&path, CREATE).unwrap();
        let payload: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        file.write_all_at(payload.clone(), 4096).await.0.unwrap();
        file.sync_data().await.unwrap();
        assert_eq!(file.len().unwrap(), 4096 + 100_000);
        let (result, buf) = file.read_exact_at(Vec::with_capacity(100_000), 4096).await;
        result.unwrap();
        assert_eq!(buf, payload);
        file.set_len(10).await.unwrap();
        assert_eq!(file.len().unwrap(), 10);
        disk.sync_dir(&directory).unwrap();
        assert!(disk.available_space_bytes(&directory).unwrap() > 0);
        assert_eq!(disk.list_dir(&directory).unwrap(), vec!["00000000000000000000.log"]);
    });
    std::fs::remove_dir_all(&directory).unwrap();
}

#[test]
fn tcp_echo_on_one_shard() {
    block_on(async {
        let listener = Listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let address = listener.local_addr().unwrap();
        let server = spawn_local(async move {
            let (stream, _) = listener.accept().await.unwrap();
            loop {
                let (result, buf) = stream.read(Vec::with_capacity(1024)).await;
                if result.unwrap() == 0 {
                    break;
                }
                stream.write_all(buf).await.0.unwrap();
            }
        });
        let client = Stream::connect(address).await.unwrap();
        client.set_nodelay(true).unwrap();
        client.write_all(bytes::Bytes::from_static(b"ping")).await.0.unwrap();
        let (result, buf) = client.read(bytes::BytesMut::with_capacity(16)).await;
        assert_eq!(result.unwrap(), 4);
        assert_eq!(&buf[..], b"ping");
        client.shutdown().unwrap();
        server.await;
    });
}

#[test]
fn many_concurrent_file_ops_on_one_shard() {
    let directory = temp_dir("concurrent");
    let path = directory.join("data");
    block_on(async {
        let file = Disk::Os.open(&path, CREATE).unwrap();
        let task_count = 256u64;
        let block_size_bytes = 4096usize;
        let mut handles = Vec::new();
        for index in 0..task_count {
            let file = file.clone();
            handles.push(spawn_local(async move {
                let block = vec![index as u8; block_size_bytes];
                let offset = index * block_size_bytes as u64;
                file.write_all_at(block, offset).await.0.unwrap();
                file.sync_data().await.unwrap();
                let (result, read) =
                    file.read_exact_at(Vec::with_capacity(block_size_bytes), offset).await;
                result.unwrap();
                assert!(read.iter().all(|&byte| byte == index as u8));
            }));
        }
        for handle in handles {
            handle.await;
        }
        assert_eq!(file.len().unwrap(), task_count * block_size_bytes as u64);
    });
    std::fs::remove_dir_all(&directory).unwrap();
}

#[test]
fn timers_fire_in_deadline_order() {
    block_on(async {
        let order = Rc::new(std::cell::RefCell::new(Vec::new()));
        let mut handles = Vec::new();
        for delay_ms in [30u64, 10, 20, 0, 25, 5] {
            let order = order.clone();
            handles.push(spawn_local(async move {
                sleep(Duration::from_millis(delay_ms)).await;
                order.borrow_mut().push(delay_ms);
            }));
        }
        for handle in handles {
            handle.await;
        }
        assert_eq!(*order.borrow(), vec![0, 5, 10, 20, 25, 30]);
        // Many short timeouts that complete early must not pile up.
        for _ in 0..10_000 {
            timeout(Duration::from_secs(60), async {}).await.unwrap();
        }
    });
}

#[test]
fn dropped_futures_with_in_flight_ops_do_not_crash() {
    block_on(async {
        let listener = Listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let address = listener.local_addr().unwrap();
        let client = Stream::connect(address).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        // A read that cannot complete, dropped by the timeout while in flight: it is cancelled,
        // so it does not swallow the data that arrives later.
        let read = timeout(Duration::from_millis(5), server.read(Vec::with_capacity(64))).await;
        assert!(read.is_err());
        client.write_all(b"after the timeout".to_vec()).await.0.unwrap();
        let (result, buf) = server.read(Vec::with_capacity(64)).await;
        assert_eq!(result.unwrap(), 17);
        assert_eq!(buf, b"after the timeout");
        // Many reads aborted in flight, each racing with data arriving for its buffer.
        for round in 0..100u32 {
            let reader = {
                let server = server.clone();
                spawn_local(async move { server.read(Vec::with_capacity(64)).await.0.unwrap() })
            };
            yield_now().await;
            client.write_all(round.to_be_bytes().to_vec()).await.0.unwrap();
            reader.abort();
            yield_now().await;
        }
        // An accept left in flight when the runtime shuts down is cancelled then.
        spawn_local(async move {
            let _ = listener.accept().await;
        });
        sleep(Duration::from_millis(1)).await;
    });
}

#[test]
fn file_ops_dropped_in_flight_keep_their_buffers_alive() {
    let directory = temp_dir("dropped-file-ops");
    block_on(async {
        let file = Disk::Os.open(&directory.join("data"), CREATE).unwrap();
        for round in 0..200u64 {
            // Dropped right after submission: the kernel still writes from / reads into the
            // buffer, which the reactor keeps until the completion.
            let write = file.write_all_at(vec![round as u8; 64 * 1024], round * 4096);
            drop(timeout(Duration::ZERO, write).await);
            let read = file.read_at(Vec::with_capacity(64 * 1024), 0);
            drop(timeout(Duration::ZERO, read).await);
        }
        file.sync_data().await.unwrap();
    });
    std::fs::remove_dir_all(&directory).unwrap();
}

#[test]
#[should_panic(expected = "inside a running shard")]
fn block_on_inside_a_shard_panics() {
    block_on(async {
        block_on(async {});
    });
}

/// Hands each shard its receiver: `run_shards` takes a `Fn`, so moved values go via a mutex.
type Slots<T> = std::sync::Arc<std::sync::Mutex<Vec<Option<T>>>>;

fn take_slot<T>(slots: &Slots<T>, shard: usize) -> T {
    slots.lock().unwrap()[shard].take().unwrap()
}

#[test]
fn mesh_channel_crosses_shards_with_backpressure_and_replies() {
    let (to_zero, from_one) = mesh::channel::<(u64, mesh::ReplySender<u64>)>(4);
    let receivers: Slots<_> = std::sync::Arc::new(std::sync::Mutex::new(vec![Some(from_one)]));
    let message_count = 2_000u64;
    let sums = run_shards(2, move |shard| {
        let receivers = receivers.clone();
        let to_zero = to_zero.clone();
        async move {
            assert_eq!(current_shard(), shard);
            if shard == 0 {
                drop(to_zero);
                let mut receiver = take_slot(&receivers, 0);
                let mut sum = 0;
                // `make` (holding a sender) lives until all shards end: count, not wait for None.
                for _ in 0..message_count {
                    let (value, reply) = receiver.recv().await.unwrap();
                    sum += value;
                    reply.send(value * 2).unwrap();
                }
                sum
            } else {
                let mut doubled_sum = 0;
                for value in 0..message_count {
                    let (reply, replied) = mesh::reply_channel();
                    to_zero.send((value, reply)).await.unwrap();
                    doubled_sum += replied.await.unwrap();
                }
                doubled_sum
            }
        }
    })
    .unwrap();
    let expected = message_count * (message_count - 1) / 2;
    assert_eq!(sums, vec![expected, 2 * expected]);
}

#[test]
fn mesh_send_waits_while_full_and_sees_dropped_receiver() {
    let (sender, receiver) = mesh::channel::<u32>(2);
    sender.try_send(1).unwrap();
    sender.try_send(2).unwrap();
    assert_eq!(sender.try_send(3), Err(mesh::TrySendError::Full(3)));
    let receivers: Slots<_> = std::sync::Arc::new(std::sync::Mutex::new(vec![Some(receiver)]));
    let results = run_shards(2, move |shard| {
        let sender = sender.clone();
        let receivers = receivers.clone();
        async move {
            if shard == 0 {
                let mut receiver = take_slot(&receivers, 0);
                // Let the sender block on a full queue first.
                sleep(Duration::from_millis(20)).await;
                let values = [receiver.recv().await, receiver.recv().await, receiver.recv().await];
                assert_eq!(values, [Some(1), Some(2), Some(3)]);
                drop(receiver);
                0
            } else {
                sender.send(3).await.unwrap();
                // Eventually the receiver is gone and the value comes back.
                let mut attempts = 0;
                while sender.send(4).await.is_ok() {
                    attempts += 1;
                    assert!(attempts < 1000);
                    sleep(Duration::from_millis(1)).await;
                }
                1
            }
        }
    })
    .unwrap();
    assert_eq!(results, vec![0, 1]);
}

#[test]
fn tcp_echo_between_two_shards_on_one_reuseport_address() {
    let (address_sender, address_receiver) = mesh::channel::<std::net::SocketAddr>(1);
    let receivers: Slots<_> =
        std::sync::Arc::new(std::sync::Mutex::new(vec![Some(address_receiver)]));
    let results = run_shards(2, move |shard| {
        let address_sender = address_sender.clone();
        let receivers = receivers.clone();
        async move {
            if shard == 0 {
                let listener = Listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
                let address = listener.local_addr().unwrap();
                // SO_REUSEPORT: a second listener on the same address must bind too.
                let twin = Listener::bind(address).unwrap();
                drop(twin);
                address_sender.send(address).await.unwrap();
                let (stream, peer) = listener.accept().await.unwrap();
                assert_eq!(stream.peer_addr().unwrap(), peer);
                let mut echoed = 0;
                loop {
                    let (result, buf) = stream.read(Vec::with_capacity(4096)).await;
                    let count = result.unwrap();
                    if count == 0 {
                        break echoed;
                    }
                    echoed += count;
                    stream.write_all(buf).await.0.unwrap();
                }
            } else {
                let address = take_slot(&receivers, 0).recv().await.unwrap();
                let stream = Stream::connect(address).await.unwrap();
                let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
                let writer = {
                    let stream = stream.clone();
                    let payload = payload.clone();
                    spawn_local(async move { stream.write_all(payload).await.0.unwrap() })
                };
                let mut received = Vec::with_capacity(payload.len());
                while received.len() < payload.len() {
                    let (result, buf) = stream.read(received).await;
                    assert!(result.unwrap() > 0);
                    received = buf;
                }
                writer.await;
                assert_eq!(received, payload);
                stream.shutdown().unwrap();
                received.len()
            }
        }
    })
    .unwrap();
    assert_eq!(results, vec![200_000, 200_000]);
}

#[test]
fn run_shards_async_awaits_shard_threads_from_a_shard() {
    let outputs = block_on(run_shards_async(3, |shard| async move {
        sleep(Duration::from_millis(1)).await;
        current_shard() * 10 + shard
    }))
    .unwrap();
    assert_eq!(outputs, vec![0, 11, 22]);
}

#[derive(Clone, Debug)]
enum DiskStep {
    Write { offset: u64, length: usize, byte: u8 },
    SetLen { size_bytes: u64 },
    Sync,
    Crash,
}

fn disk_step() -> impl proptest::strategy::Strategy<Value = DiskStep> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (0u64..3000, 0usize..700, any::<u8>())
            .prop_map(|(offset, length, byte)| DiskStep::Write { offset, length, byte }),
        1 => (0u64..4000).prop_map(|size_bytes| DiskStep::SetLen { size_bytes }),
        2 => Just(DiskStep::Sync),
        1 => Just(DiskStep::Crash),
    ]
}

/// Applies `step` to the model: (durable image, cached image).
fn model_apply(model: &mut (Vec<u8>, Vec<u8>), step: &DiskStep) {
    match *step {
        // A zero-length write changes nothing, not even the size (as pwrite(2)).
        DiskStep::Write { length: 0, .. } => {}
        DiskStep::Write { offset, length, byte } => {
            let end = offset as usize + length;
            if model.1.len() < end {
                model.1.resize(end, 0);
            }
            model.1[offset as usize..end].fill(byte);
        }
        DiskStep::SetLen { size_bytes } => model.1.resize(size_bytes as usize, 0),
        DiskStep::Sync => model.0 = model.1.clone(),
        DiskStep::Crash => model.1 = model.0.clone(),
    }
}

proptest::proptest! {
    /// SimDisk (DropUnsynced crashes) against a two-image model: reads see the cached image,
    /// a crash leaves exactly what was synced.
    #[test]
    fn sim_disk_matches_a_durable_plus_cached_model(
        steps in proptest::collection::vec(disk_step(), 1..40)
    ) {
        let sim = SimDisk::new(3);
        let disk = Disk::Simulated(sim.clone());
        let path = Path::new("/model.log");
        let mut model = (Vec::new(), Vec::new());
        block_on(async {
            let mut file = disk.open(path, CREATE).unwrap();
            for step in &steps {
                match *step {
                    DiskStep::Write { offset, length, byte } => {
                        file.write_all_at(vec![byte; length], offset).await.0.unwrap()
                    }
                    DiskStep::SetLen { size_bytes } => file.set_len(size_bytes).await.unwrap(),
                    DiskStep::Sync => file.sync_data().await.unwrap(),
                    DiskStep::Crash => {
                        sim.crash(CrashMode::DropUnsynced);
                        file = disk.open(path, OpenOptions::default()).unwrap();
                    }
                }
                model_apply(&mut model, step);
                let length = file.len().unwrap() as usize;
                assert_eq!(length, model.1.len());
                let (result, cached) = file.read_exact_at(Vec::with_capacity(length), 0).await;
                result.unwrap();
                assert_eq!(cached, model.1);
                assert_eq!(sim.durable_bytes(path).unwrap(), model.0);
            }
        });
    }
}

#[test]
fn seed_random_repeats_the_sequence() {
    seed_random(42);
    let first: Vec<u64> = (0..4).map(|_| random_u64()).collect();
    seed_random(42);
    let again: Vec<u64> = (0..4).map(|_| random_u64()).collect();
    assert_eq!(first, again);
    seed_random(43);
    assert_ne!(random_u64(), first[0]);
}

/// Sets its flag when dropped.
struct DropFlag(Rc<std::cell::Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

#[test]
fn drop_spawned_tasks_drops_parked_tasks_and_the_runtime_goes_on() {
    block_on(async {
        let dropped = Rc::new(std::cell::Cell::new(false));
        let flag = DropFlag(dropped.clone());
        let parked = spawn_local(async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        });
        yield_now().await;
        assert!(!dropped.get() && !parked.is_finished());
        drop_spawned_tasks();
        assert!(dropped.get(), "the parked task's future was dropped");
        let after = spawn_local(async { 7 });
        assert_eq!(after.await, 7, "tasks spawned afterwards run");
    });
}

/// The replay tests of the fuzz corpora rely on it: a panic in a spawned task unwinds out of
/// `block_on` (tearing the runtime down) rather than aborting the process.
#[test]
fn a_panic_in_a_spawned_task_unwinds_out_of_block_on() {
    let outcome = std::panic::catch_unwind(|| {
        block_on(async {
            let _parked = spawn_local(std::future::pending::<()>());
            spawn_local(async { panic!("planted") }).await;
        })
    });
    assert!(outcome.is_err());
    assert_eq!(block_on(async { spawn_local(async { 1 }).await }), 1, "a new runtime works");
}

#[test]
fn the_listener_probe_fails_on_a_listening_port_only_and_takes_no_connection() {
    use super::backend::net::OsListener;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = listener.local_addr().expect("its address");
    let error = OsListener::probe(address).expect_err("a listener is there");
    assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
    drop(listener);
    OsListener::probe(address).expect("nothing listens any more");
    // The probe never listens: nothing can connect to it.
    OsListener::probe(address).expect("probing twice");
    let refused = std::net::TcpStream::connect(address);
    assert!(refused.is_err(), "a probe accepted a connection");
}
