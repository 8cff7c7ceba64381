//! Starting and stopping a broker: the data directory, the shards, and their listeners.
//!
//! `Broker::prepare` does everything that can fail before a port is opened (data dir, cluster
//! identity, topic registry); `Broker::run` then runs one shard per core until a
//! [`ShutdownHandle`] asks them to stop, at which point each shard stops accepting, flushes
//! and closes its partition logs.

use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::io::{self, mesh, Disk, Listener};

use super::cluster::{cut_off, leadership, routing, Controller};
use super::config::{BrokerConfig, DEFAULT_NODE_ID};
use super::connection::{self, ConnectionCount};
use super::groups::{self, GroupService};
use super::metadata_file;
use super::shard::{ClusterIdentity, Job, Shard, JOB_QUEUE_CAPACITY};
use super::topics::{self, TopicMeta, TopicSnapshot};

const IDENTITY_FILE_NAME: &str = "meta.json";
const IDENTITY_FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct IdentityFile {
    version: u32,
    cluster_id: String,
    node_id: i32,
    /// A random id made with the directory (KIP-853's directory id): a broker that comes back
    /// with another one lost its disk, and with it its replicas' logs, votes and epochs.
    /// Directories made before it existed get one the first time they are opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    directory_id: Option<uuid::Uuid>,
}

/// A broker whose data directory is ready, not yet serving.
pub struct Broker {
    config: Arc<BrokerConfig>,
    cluster: ClusterIdentity,
    disk: Disk,
    topics: Arc<TopicSnapshot>,
    senders: Vec<mesh::Sender<Job>>,
    receivers: Arc<Mutex<Vec<Option<mesh::Receiver<Job>>>>>,
    connections: Arc<ConnectionCount>,
}

/// Asks every shard to stop. Cheap to clone; usable from any thread (a signal handler thread).
#[derive(Clone)]
pub struct ShutdownHandle {
    senders: Vec<mesh::Sender<Job>>,
}

impl ShutdownHandle {
    /// A controlled shutdown: shard 0 has every shard hand its partitions' leadership over
    /// (in a cluster, bounded by [`HAND_OVER_TIMEOUT`]), then stops them all. Falls back to
    /// stopping every shard at once if shard 0 cannot take the request.
    pub fn shutdown(&self) {
        let controlled: Job =
            Box::new(|shard: Rc<Shard>| Box::pin(async move { controlled_shutdown(shard).await }));
        let Some(first) = self.senders.first() else { return };
        if first.try_send(controlled).is_ok() {
            return;
        }
        tracing::warn!("shard 0 did not take the shutdown request; stopping every shard at once");
        self.stop_now();
    }

    fn stop_now(&self) {
        for sender in &self.senders {
            let job: Job =
                Box::new(|shard: Rc<Shard>| Box::pin(async move { shard.request_shutdown() }));
            if sender.try_send(job).is_err() {
                tracing::warn!("shard did not take the shutdown request (queue full or gone)");
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("data directory belongs to node {found}, but this broker is node {configured}")]
    NodeIdMismatch { found: i32, configured: i32 },
    #[error("cannot listen on {address}: {source}")]
    Listen { address: std::net::SocketAddr, source: std::io::Error },
    #[error("shards: {0}")]
    Shards(std::io::Error),
}

impl Broker {
    /// Prepares the data directory on the real disk. Blocks the calling thread briefly.
    /// Refuses to start when another process listens on the Kafka or the peer address
    /// (`io::ensure_not_listening`: SO_REUSEPORT would let the two share the port).
    #[cfg(not(madsim))]
    pub fn prepare(config: BrokerConfig) -> Result<Broker, StartError> {
        let peer_listen = config.cluster.as_ref().map(|cluster| cluster.peer_listen);
        for address in std::iter::once(config.listen).chain(peer_listen) {
            io::ensure_not_listening(address)
                .map_err(|source| StartError::Listen { address, source })?;
        }
        io::block_on(Broker::open(config, Disk::Os))
    }

    /// Prepares the data directory on `disk` (the real one, or a simulated one).
    pub async fn open(config: BrokerConfig, disk: Disk) -> Result<Broker, StartError> {
        assert!(config.shard_count > 0, "at least one shard");
        let data_dir = config.data_dir.clone();
        let data_dir_error =
            |source| StartError::DataDir { path: data_dir.display().to_string(), source };
        disk.create_dir_all(&data_dir).map_err(data_dir_error)?;
        let new_node_id = config.node_id.unwrap_or(DEFAULT_NODE_ID);
        let new_cluster_id = match &config.cluster {
            Some(cluster) => cluster_id_of(&cluster.voters),
            None => new_cluster_id(),
        };
        let identity = load_or_create_identity(&disk, &data_dir, new_node_id, new_cluster_id)
            .await
            .map_err(data_dir_error)?;
        let topics = match &config.cluster {
            // A cluster's topics are the controller's metadata log, applied once it commits.
            Some(_) => Arc::new(TopicSnapshot::default()),
            None => {
                let topics =
                    topics::load_registry(&disk, &data_dir).await.map_err(data_dir_error)?;
                ensure_offsets_topic(&disk, &data_dir, topics).await.map_err(data_dir_error)?
            }
        };
        if let Some(configured) = config.node_id.filter(|id| *id != identity.node_id) {
            return Err(StartError::NodeIdMismatch { found: identity.node_id, configured });
        }
        let cluster = ClusterIdentity {
            cluster_id: identity.cluster_id,
            node_id: identity.node_id,
            directory_id: identity.directory_id,
        };
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..config.shard_count).map(|_| mesh::channel::<Job>(JOB_QUEUE_CAPACITY)).unzip();
        Ok(Broker {
            config: Arc::new(config),
            cluster,
            disk,
            topics,
            senders,
            receivers: Arc::new(Mutex::new(receivers.into_iter().map(Some).collect())),
            connections: Arc::new(ConnectionCount::default()),
        })
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle { senders: self.senders.clone() }
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster.cluster_id
    }

    /// Serves until shut down, one thread per shard. Blocks the calling thread.
    pub fn run(self) -> Result<(), StartError> {
        let shard_count = self.config.shard_count;
        let outcomes =
            io::run_shards(shard_count, self.shard_factory()).map_err(StartError::Shards)?;
        outcomes.into_iter().collect()
    }

    /// Serves until shut down, the shards as tasks of the current runtime (the simulator).
    pub async fn serve(self) -> Result<(), StartError> {
        let shard_count = self.config.shard_count;
        let outcomes = io::run_shards_async(shard_count, self.shard_factory())
            .await
            .map_err(StartError::Shards)?;
        outcomes.into_iter().collect()
    }

    fn shard_factory(self) -> impl Fn(usize) -> ShardMain + Send + Sync {
        let Broker { config, cluster, disk, topics, senders, receivers, connections } = self;
        assert!(
            matches!(disk, Disk::Os) || cfg!(madsim),
            "a simulated disk is single-threaded: only the madsim build may serve from it"
        );
        let disk = Arc::new(Mutex::new(SendDisk(disk)));
        move |shard_id| {
            let receiver = receivers.lock().expect("startup lock")[shard_id].take();
            let receiver = receiver.expect("each shard takes its receiver once");
            let disk = disk.lock().expect("startup lock").0.clone();
            let shard = Shard::new(
                shard_id,
                config.clone(),
                cluster.clone(),
                disk,
                senders.clone(),
                Arc::new(TopicSnapshot::default()),
                connections.clone(),
            );
            Box::pin(run_shard(shard, receiver, topics.clone()))
        }
    }
}

/// The disk handle crosses into the shard threads once, at start. An OS disk is a plain value;
/// a simulated disk only exists in single-threaded runs (tests, the simulator), where all
/// "shards" are tasks of one thread.
struct SendDisk(Disk);

// SAFETY: `Disk::Os` holds no shared state. `Disk::Simulated` holds an `Rc`; `shard_factory`
// admits it only in the madsim build, where every shard is a task of the one simulation thread.
unsafe impl Send for SendDisk {}

/// A shard's main task, as handed to the runtime.
type ShardMain = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StartError>>>>;

/// One shard's life: open its partitions, serve jobs and connections, stop on request.
pub async fn run_shard(
    shard: Rc<Shard>,
    jobs: mesh::Receiver<Job>,
    topics: Arc<TopicSnapshot>,
) -> Result<(), StartError> {
    shard.apply_topics(topics).await;
    drop(io::spawn_local(shard.clone().serve_jobs(jobs)));
    if let Err(error) = start_cluster_role(&shard).await {
        tracing::error!(%error, "cannot join the cluster; stopping");
        stop_all_shards(&shard);
        shard.close_partitions().await;
        return Err(error);
    }
    match shard.config.cluster {
        None => shard.groups.load(&shard).await,
        Some(_) => shard.groups.start_in_cluster(),
    }
    drop(io::spawn_local(GroupService::run_timer(shard.clone())));
    drop(io::spawn_local(shard.clone().run_retention()));
    drop(io::spawn_local(shard.clone().run_cleaner()));
    let listener = match Listener::bind(shard.config.listen) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(address = %shard.config.listen, %error, "cannot listen; stopping");
            // Every shard must listen, or the broker would serve some connections and not
            // others: stop them all.
            stop_all_shards(&shard);
            shard.close_partitions().await;
            return Err(StartError::Listen { address: shard.config.listen, source: error });
        }
    };
    tracing::info!(shard = shard.id, address = %shard.config.listen, "listening");
    accept_until_shutdown(&shard, &listener).await;
    drop(listener);
    shard.close_partitions().await;
    Ok(())
}

/// How long a shutting-down broker waits for its partitions' leadership to move (Kafka's
/// controlled shutdown takes about as long: a few metadata round trips). A leadership that
/// has not moved by then moves by election after the process exits.
pub const HAND_OVER_TIMEOUT: Duration = Duration::from_secs(5);

/// On shard 0: every shard hands its leadership over at once (shard 0 keeps carrying their
/// replica messages meanwhile), then every shard stops. A single node has nothing to hand.
async fn controlled_shutdown(shard: Rc<Shard>) {
    if shard.config.cluster.is_some() && !shard.is_shutting_down() {
        let deadline = io::now() + HAND_OVER_TIMEOUT;
        let others = (1..shard.shard_count()).map(|other| {
            shard.call_on(other, move |target| async move {
                target.hand_over_leadership(deadline).await
            })
        });
        let others = futures_util::future::join_all(others);
        futures_util::future::join(shard.hand_over_leadership(deadline), others).await;
    }
    stop_all_shards(&shard);
}

/// Asks every shard, this one included, to stop.
fn stop_all_shards(shard: &Rc<Shard>) {
    for other in (0..shard.shard_count()).filter(|other| *other != shard.id) {
        let origin = shard.clone();
        drop(io::spawn_local(async move {
            origin.call_on(other, |target| async move { target.request_shutdown() }).await
        }));
    }
    shard.request_shutdown();
}

/// In a cluster: shard 0 starts the controller and the peer transport; the other shards
/// carry their partitions' replica messages to it.
async fn start_cluster_role(shard: &Rc<Shard>) -> Result<(), StartError> {
    let Some(cluster) = &shard.config.cluster else { return Ok(()) };
    drop(io::spawn_local(leadership::run_announcer(shard.clone())));
    if shard.id != 0 {
        drop(io::spawn_local(routing::run_outbox(shard.clone())));
        return Ok(());
    }
    let controller = Controller::start(shard, cluster).await?;
    shard.set_controller(controller);
    drop(io::spawn_local(cut_off::run_watch(shard.clone())));
    Ok(())
}

async fn accept_until_shutdown(shard: &Rc<Shard>, listener: &Listener) {
    loop {
        let stopped = shard.shutdown_requested.notified();
        if shard.is_shutting_down() {
            return;
        }
        let accepted = listener.accept();
        futures_util::pin_mut!(stopped, accepted);
        match futures_util::future::select(stopped, accepted).await {
            futures_util::future::Either::Left(_) => return,
            futures_util::future::Either::Right((Ok((stream, peer)), _)) => {
                if shard.is_cut_off() {
                    tracing::debug!(%peer, "closing connection: cut off from the cluster");
                    let _ = stream.shutdown();
                    continue;
                }
                let max_connections = shard.config.max_connections;
                let Some(slot) = shard.connections.admit(max_connections) else {
                    // As Kafka: the connection is accepted and closed at once.
                    tracing::warn!(%peer, max_connections, "closing connection: too many open");
                    let _ = stream.shutdown();
                    continue;
                };
                drop(io::spawn_local(connection::serve(shard.clone(), stream, peer, slot)));
            }
            futures_util::future::Either::Right((Err(error), _)) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(%error, "accept failed");
                io::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        if shard.is_shutting_down() {
            return;
        }
    }
}

/// Creates `__consumer_offsets` (50 partitions, compacted, as Kafka) in the registry if it is
/// absent, and makes an existing one (created before compaction existed) compacted.
async fn ensure_offsets_topic(
    disk: &Disk,
    data_dir: &Path,
    topics: Arc<TopicSnapshot>,
) -> std::io::Result<Arc<TopicSnapshot>> {
    if let Some(existing) = topics.get(groups::OFFSETS_TOPIC) {
        if existing.configs.get("cleanup.policy").map(String::as_str) == Some("compact") {
            return Ok(topics);
        }
        let mut upgraded = existing.clone();
        upgraded.configs.insert("cleanup.policy".to_string(), "compact".to_string());
        let others: Vec<TopicMeta> = topics
            .by_name
            .values()
            .filter(|topic| topic.name != groups::OFFSETS_TOPIC)
            .cloned()
            .collect();
        let snapshot =
            Arc::new(TopicSnapshot::new(others.into_iter().chain(std::iter::once(upgraded))));
        topics::store_registry(disk, data_dir, &snapshot).await?;
        tracing::info!("__consumer_offsets is now compacted");
        return Ok(snapshot);
    }
    let id = io::random_uuid();
    let offsets_topic = groups::offsets_topic(id, Vec::new());
    let all = topics.by_name.values().cloned().chain(std::iter::once(offsets_topic));
    let snapshot = Arc::new(TopicSnapshot::new(all));
    topics::store_registry(disk, data_dir, &snapshot).await?;
    tracing::info!(partitions = groups::OFFSETS_TOPIC_PARTITIONS, "created __consumer_offsets");
    Ok(snapshot)
}

/// What the identity file says, every field present.
struct Identity {
    cluster_id: String,
    node_id: i32,
    directory_id: uuid::Uuid,
}

async fn load_or_create_identity(
    disk: &Disk,
    data_dir: &Path,
    node_id: i32,
    new_cluster_id: String,
) -> std::io::Result<Identity> {
    let path = data_dir.join(IDENTITY_FILE_NAME);
    if !disk.exists(&path) {
        let directory_id = io::random_uuid();
        let identity = IdentityFile {
            version: IDENTITY_FORMAT_VERSION,
            cluster_id: new_cluster_id,
            node_id,
            directory_id: Some(directory_id),
        };
        write_identity(disk, &path, &identity).await?;
        tracing::info!(
            cluster_id = %identity.cluster_id,
            %directory_id,
            "new data directory initialised"
        );
        return Ok(Identity { cluster_id: identity.cluster_id, node_id, directory_id });
    }
    let (bytes, legacy) = metadata_file::read(disk, &path).await?;
    let mut identity: IdentityFile = metadata_file::parse_versioned(
        &bytes,
        &path,
        "identity file",
        |identity: &IdentityFile| identity.version,
        IDENTITY_FORMAT_VERSION,
    )?;
    let directory_id = match identity.directory_id {
        Some(directory_id) if legacy => {
            // Written before metadata files had checksums: seal it (same content).
            metadata_file::write(disk, &path, &bytes).await?;
            tracing::info!(path = %path.display(), "identity upgraded to the checksummed format");
            directory_id
        }
        Some(directory_id) => directory_id,
        None => {
            // This directory kept its data: it is not a new one, it only had no id yet.
            let directory_id = io::random_uuid();
            identity.directory_id = Some(directory_id);
            write_identity(disk, &path, &identity).await?;
            tracing::info!(%directory_id, "data directory given its id");
            directory_id
        }
    };
    Ok(Identity { cluster_id: identity.cluster_id, node_id: identity.node_id, directory_id })
}

async fn write_identity(disk: &Disk, path: &Path, identity: &IdentityFile) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(identity).map_err(std::io::Error::other)?;
    metadata_file::write(disk, path, &bytes).await
}

/// 16 random bytes in URL-safe base64 without padding: the shape of Kafka's cluster ids.
fn new_cluster_id() -> String {
    let bits = (u128::from(io::random_u64()) << 64) | u128::from(io::random_u64());
    cluster_id_from_bits(bits)
}

/// A cluster's id, the same on every broker of it: derived from the voters (ids and peer
/// addresses), which every broker is started with. Kafka's operators pass one to
/// `kafka-storage format` instead; here there is nothing to format.
fn cluster_id_of(voters: &std::collections::BTreeMap<i32, std::net::SocketAddr>) -> String {
    let text: String = voters.iter().map(|(id, address)| format!("{id}@{address},")).collect();
    let high = u128::from(crc32c::crc32c(text.as_bytes()));
    let low = u128::from(crc32c::crc32c_append(0x5445_524e, text.as_bytes()));
    cluster_id_from_bits((high << 96) | (low << 64) | u128::from(text.len() as u64))
}

fn cluster_id_from_bits(bits: u128) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..22).map(|index| ALPHABET[((bits >> (index * 6)) & 0x3f) as usize] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{block_on, SimDisk};

    #[test]
    fn the_identity_is_sealed_a_legacy_one_is_upgraded_and_damage_refuses_to_start() {
        block_on(async {
            let disk = Disk::Simulated(SimDisk::new(3));
            let data_dir = Path::new("/data");
            disk.create_dir_all(data_dir).unwrap();
            let path = data_dir.join(IDENTITY_FILE_NAME);
            let directory_id = Some(uuid::Uuid::from_u128(5));
            let legacy = IdentityFile {
                version: 1,
                cluster_id: "abc".to_string(),
                node_id: 4,
                directory_id,
            };
            let json = serde_json::to_vec_pretty(&legacy).unwrap();
            topics::write_file_atomically(&disk, &path, json.clone()).await.unwrap();
            let loaded = load_or_create_identity(&disk, data_dir, 4, "new".to_string())
                .await
                .expect("legacy loads");
            assert_eq!((loaded.cluster_id.as_str(), loaded.node_id), ("abc", 4));
            assert_eq!(Some(loaded.directory_id), directory_id);
            let sealed = topics::read_whole_file(&disk, &path).await.unwrap();
            assert_eq!(sealed, metadata_file::seal(&json), "sealed at start, same content");
            let mut damaged = sealed.clone();
            let last = damaged.len() - 3;
            damaged[last] ^= 0x04;
            topics::write_file_atomically(&disk, &path, damaged).await.unwrap();
            let Err(error) = load_or_create_identity(&disk, data_dir, 4, "new".to_string()).await
            else {
                panic!("damage went undetected");
            };
            assert!(error.to_string().contains("/data/meta.json is damaged"), "{error}");
        });
    }

    #[test]
    fn a_new_directory_gets_an_id_and_one_made_before_ids_gets_one_it_keeps() {
        block_on(async {
            let disk = Disk::Simulated(SimDisk::new(4));
            let data_dir = Path::new("/data");
            disk.create_dir_all(data_dir).unwrap();
            let path = data_dir.join(IDENTITY_FILE_NAME);
            let made = load_or_create_identity(&disk, data_dir, 2, "c".to_string()).await.unwrap();
            let again = load_or_create_identity(&disk, data_dir, 2, "c".to_string()).await.unwrap();
            assert_eq!(made.directory_id, again.directory_id, "an id is kept");
            assert_ne!(made.directory_id, uuid::Uuid::nil());
            let before_ids = IdentityFile {
                version: 1,
                cluster_id: "old".to_string(),
                node_id: 2,
                directory_id: None,
            };
            write_identity(&disk, &path, &before_ids).await.unwrap();
            let given = load_or_create_identity(&disk, data_dir, 2, "c".to_string()).await.unwrap();
            assert_eq!((given.cluster_id.as_str(), given.node_id), ("old", 2));
            assert_ne!(given.directory_id, made.directory_id, "a new id, made once");
            let kept = load_or_create_identity(&disk, data_dir, 2, "c".to_string()).await.unwrap();
            assert_eq!(kept.directory_id, given.directory_id);
        });
    }
}
