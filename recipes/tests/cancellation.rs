//! Cancellation at the worst moments, made deterministic with the embedded server's fault kit and
//! a holding proxy: an acquisition dropped while its create request is in flight, and a release
//! dropped while its delete is lost with the connection. In every case the node must go and the
//! lock (or lease) must become free while the session lives on.

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use corral_recipes::lock::Mutex;
use corral_recipes::semaphore::SemaphoreV2;
use corral_recipes::{ConnectionStateChange, Framework, RetryNTimes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const T: Duration = Duration::from_secs(30);
const CREATE: i32 = 1;
const CREATE2: i32 = 15;
const DELETE: i32 = 2;

/// A framework with a session long enough to outlive every fault below.
fn framework(connect_string: String) -> Framework {
    Framework::builder(connect_string)
        .session_timeout(Duration::from_secs(10))
        .connection_timeout(Duration::from_secs(10))
        .retry_policy(RetryNTimes::new(20, Duration::from_millis(50)))
        .start()
        .expect("start framework")
}

async fn connected(fw: &Framework) -> ConnectionStateChange {
    fw.wait_until_connected(T).await.expect("connected");
    fw.current_state()
}

/// Bounds `f` by [`T`].
async fn bounded<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(T, f).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

type Trigger = Box<dyn Fn(i32, &str) -> bool + Send + Sync>;

/// A TCP proxy that forwards whole request frames until one matches its trigger, then holds that
/// frame and every later one (on every connection) until [`HoldProxy::release`]. `cut` closes
/// every connection, discarding what is held; `set_blocked` refuses new connections.
struct HoldProxy {
    addr: SocketAddr,
    shared: Arc<ProxyShared>,
}

struct ProxyShared {
    trigger: StdMutex<Option<Trigger>>,
    holding: watch::Sender<bool>,
    cut: watch::Sender<u64>,
    blocked: AtomicBool,
}

impl HoldProxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(ProxyShared {
            trigger: StdMutex::new(None),
            holding: watch::Sender::new(false),
            cut: watch::Sender::new(0),
            blocked: AtomicBool::new(false),
        });
        let accepting = shared.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if accepting.blocked.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                tokio::spawn(proxy_connection(client, target, accepting.clone()));
            }
        });
        Self { addr, shared }
    }

    /// The connect string through the proxy.
    fn connect_string(&self, chroot: &str) -> String {
        format!("{}{chroot}", self.addr)
    }

    /// Holds, from the first request frame `(opcode, path)` for which `trigger` is true.
    fn hold_from(&self, trigger: impl Fn(i32, &str) -> bool + Send + Sync + 'static) {
        *self.shared.trigger.lock().unwrap() = Some(Box::new(trigger));
    }

    /// Resolves once a frame matched the trigger and is being held.
    async fn holding(&self) {
        let _ = self.shared.holding.subscribe().wait_for(|h| *h).await;
    }

    /// Forwards what is held, in order, and stops holding.
    fn release(&self) {
        self.shared.holding.send_replace(false);
    }

    fn cut(&self) {
        self.shared.cut.send_modify(|g| *g += 1);
    }

    fn set_blocked(&self, blocked: bool) {
        self.shared.blocked.store(blocked, Ordering::SeqCst);
    }
}

/// `(opcode, path)` of a request frame (without its length prefix); the path is empty for
/// requests that do not start with one.
fn describe(frame: &[u8]) -> (i32, String) {
    let int = |at: usize| frame.get(at..at + 4).map(|b| i32::from_be_bytes(b.try_into().unwrap()));
    let op = int(4).unwrap_or(0);
    let path = int(8)
        .and_then(|len| usize::try_from(len).ok())
        .and_then(|len| frame.get(12..12 + len))
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    (op, path)
}

async fn proxy_connection(client: TcpStream, target: SocketAddr, shared: Arc<ProxyShared>) {
    let Ok(server) = TcpStream::connect(target).await else { return };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let mut cut = shared.cut.subscribe();
    let mut holding = shared.holding.subscribe();
    let up = async {
        let (mut input, mut held) = (Vec::new(), Vec::new());
        let mut handshake_done = false;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut out = Vec::new();
            tokio::select! {
                n = cr.read(&mut buf) => {
                    let n = n?;
                    if n == 0 {
                        return Ok::<(), std::io::Error>(());
                    }
                    input.extend_from_slice(&buf[..n]);
                    while input.len() >= 4 {
                        let len = u32::from_be_bytes(input[..4].try_into().unwrap()) as usize;
                        if input.len() < 4 + len {
                            break;
                        }
                        let frame: Vec<u8> = input.drain(..4 + len).collect();
                        if handshake_done && !*holding.borrow() {
                            let (op, path) = describe(&frame[4..]);
                            let mut trigger = shared.trigger.lock().unwrap();
                            if trigger.as_ref().is_some_and(|t| t(op, &path)) {
                                *trigger = None;
                                shared.holding.send_replace(true);
                            }
                        }
                        handshake_done = true;
                        if *holding.borrow() { held.extend(frame) } else { out.extend(frame) }
                    }
                }
                _ = holding.changed() => {
                    if !*holding.borrow_and_update() {
                        out.append(&mut held);
                    }
                }
            }
            if !out.is_empty() {
                sw.write_all(&out).await?;
            }
        }
    };
    let down = tokio::io::copy(&mut sr, &mut cw);
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = cut.changed() => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutex_acquire_dropped_while_its_create_is_in_flight_leaves_no_node() {
    let env = common::embedded("cancel-mutex-acquire").await;
    let server = env.server.clone().unwrap();
    let fw = framework(env.connect_string());
    let other = framework(env.connect_string());
    let mutex = Mutex::new(&fw, "/lock");
    mutex.acquire().await.unwrap().release().await.unwrap(); // the directory exists
    let observer = env.client().await;
    let (before, _, created) = observer.get_children_and_watch("/lock").await.unwrap();
    assert!(before.is_empty());
    let session = connected(&fw).await;

    // Every request now waits 500 ms at the server. The first poll sends the create; the
    // future is dropped long before its reply can come.
    server.set_latency(Duration::from_millis(500));
    {
        let mut acquire = pin!(mutex.acquire());
        assert!(futures::poll!(acquire.as_mut()).is_pending());
    }
    let mut created = pin!(created);
    assert!(futures::poll!(created.as_mut()).is_pending(), "the create is still in flight when dropped");
    bounded("the abandoned create is applied", created).await;
    server.set_latency(Duration::ZERO);

    // The node made after the drop is found by its protected prefix and deleted: another
    // contender gets the lock, and the session that made the node is still alive.
    let contender = Mutex::new(&other, "/lock");
    let guard = contender.acquire_timeout(Duration::from_secs(10)).await.expect("the lock is free");
    let name = guard.path().rsplit('/').next().unwrap().to_owned();
    assert_eq!(contender.participant_nodes().await.unwrap(), vec![name], "no _c_ node of the dropped acquire");
    assert_eq!(fw.current_state().epoch, session.epoch, "the session did not end");
    guard.release().await.unwrap();

    // The cleanup never touches a later acquisition of the same mutex.
    let mine = mutex.acquire().await.unwrap();
    common::eventually("background work done", || async { fw.pending_guaranteed_deletes() == 0 }).await;
    assert!(mine.check_ownership().await.unwrap());
    mine.release().await.unwrap();
    observer.close().await;
    fw.close().await;
    other.close().await;
}

/// Drops a [`SemaphoreV2::acquire`] of `fw` while the create matching `held` is held by the proxy,
/// then lets the create through, and checks that another acquirer gets the only lease.
async fn drop_semaphore_acquire_while(held: &'static str, name: &str) {
    let env = common::embedded(name).await;
    let proxy = HoldProxy::start(common_addr(&env)).await;
    let fw = framework(proxy.connect_string(&env.chroot));
    let other = framework(env.connect_string());
    let sem = SemaphoreV2::new(&fw, "/sem", 1);
    sem.acquire().await.unwrap().release().await.unwrap(); // the directories exist
    let observer = env.client().await;
    let watched = if held == "/locks/" { "/sem/locks" } else { "/sem/leases" };
    let (before, _, created) = observer.get_children_and_watch(watched).await.unwrap();
    assert!(before.is_empty());
    let session = connected(&fw).await;

    proxy.hold_from(move |op, path| (op == CREATE || op == CREATE2) && path.contains(held));
    {
        let mut acquire = pin!(sem.acquire());
        tokio::select! {
            r = acquire.as_mut() => panic!("acquired while its create is held: {r:?}"),
            () = bounded("the create reaches the proxy", proxy.holding()) => {}
        }
    }
    // The create reaches the server only after the future is gone.
    proxy.release();
    bounded("the abandoned create is applied", created).await;

    let contender = SemaphoreV2::new(&other, "/sem", 1);
    let lease = contender.acquire_timeout(Duration::from_secs(10)).await.expect("the lease is free");
    let lease_name = lease.path().rsplit('/').next().unwrap().to_owned();
    assert_eq!(contender.participant_nodes().await.unwrap(), vec![lease_name]);
    assert_eq!(observer.get_children("/sem/locks").await.unwrap(), Vec::<String>::new());
    assert_eq!(fw.current_state().epoch, session.epoch, "the session did not end");
    lease.release().await.unwrap();
    observer.close().await;
    fw.close().await;
    other.close().await;
}

fn common_addr(env: &common::Env) -> SocketAddr {
    env.server.as_ref().expect("embedded").addr()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_semaphore_acquire_dropped_while_its_inner_lock_create_is_in_flight_leaves_no_node() {
    drop_semaphore_acquire_while("/locks/", "cancel-sem-lock").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_semaphore_acquire_dropped_while_its_lease_create_is_in_flight_leaves_no_lease() {
    drop_semaphore_acquire_while("/leases/", "cancel-sem-lease").await;
}

/// Holds the delete of `node` at the proxy, cuts the connection (the delete is lost) and refuses
/// to reconnect while `release` is driven into its wait for a connection, drops it there, lets
/// the framework reconnect, and checks that the node goes within the same session.
async fn drop_release_mid_way<F: Future>(proxy: &HoldProxy, fw: &Framework, node: &str, release: F)
where
    F::Output: std::fmt::Debug,
{
    let session = connected(fw).await;
    let name = node.rsplit('/').next().unwrap().to_owned();
    proxy.hold_from(move |op, path| op == DELETE && path.ends_with(&name));
    let mut states = fw.connection_state();
    {
        let mut release = pin!(release);
        assert!(futures::poll!(release.as_mut()).is_pending());
        bounded("the delete reaches the proxy", proxy.holding()).await;
        proxy.set_blocked(true);
        proxy.cut();
        // Polled only once the framework is SUSPENDED: the delete's ConnectionLoss is already
        // there, so the release goes straight into the retry loop's wait for a connection (a
        // poll before that could retry at once and queue a second delete in the client).
        let _ = bounded("SUSPENDED", states.wait_for(|s| !s.state.is_connected())).await;
        assert!(futures::poll!(release.as_mut()).is_pending(), "waiting for a connection");
    }
    proxy.release();
    proxy.set_blocked(false);
    let now = connected(fw).await;
    assert_eq!((now.epoch, now.session_id), (session.epoch, session.session_id), "same session");
    common::eventually("the node deleted", || async { fw.client().exists(node).await.unwrap().is_none() }).await;
    assert_eq!(fw.current_state().epoch, session.epoch, "the session did not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutex_release_dropped_while_the_delete_waits_for_a_connection_still_releases() {
    let env = common::embedded("cancel-mutex-release").await;
    let proxy = HoldProxy::start(common_addr(&env)).await;
    let fw = framework(proxy.connect_string(&env.chroot));
    let other = framework(env.connect_string());
    let guard = Mutex::new(&fw, "/lock").acquire().await.unwrap();
    let node = guard.path().to_owned();
    drop_release_mid_way(&proxy, &fw, &node, guard.release()).await;
    let next = Mutex::new(&other, "/lock").acquire_timeout(Duration::from_secs(10)).await.expect("the lock is free");
    drop(next);
    fw.close().await;
    other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_release_dropped_while_the_delete_waits_for_a_connection_still_releases() {
    let env = common::embedded("cancel-lease-release").await;
    let proxy = HoldProxy::start(common_addr(&env)).await;
    let fw = framework(proxy.connect_string(&env.chroot));
    let other = framework(env.connect_string());
    let lease = SemaphoreV2::new(&fw, "/sem", 1).acquire().await.unwrap();
    let node = lease.path().to_owned();
    drop_release_mid_way(&proxy, &fw, &node, lease.release()).await;
    let next =
        SemaphoreV2::new(&other, "/sem", 1).acquire_timeout(Duration::from_secs(10)).await.expect("the lease is free");
    drop(next);
    fw.close().await;
    other.close().await;
}
