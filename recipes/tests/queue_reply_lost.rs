//! Queue takes whose delete (or lock-safe ack) is applied by the server but whose reply is lost
//! with the connection: the consumer cannot tell from the error whether its delete went through.
//! A proxy between the framework and the embedded server forwards every request and stops
//! forwarding replies from the first request with a chosen opcode, then closes the connection.
//! Each item must still come out exactly once, and nothing may be left behind.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use corral_recipes::queue::{DistributedQueue, SimpleDistributedQueue};
use corral_recipes::{Framework, RetryNTimes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const T: Duration = Duration::from_secs(30);
const DELETE: i32 = 2;
const MULTI: i32 = 14;

/// A TCP proxy that loses every reply from the first request with opcode `trigger` on (one-shot),
/// then closes that connection; the requests themselves reach the server.
struct ReplyCutter {
    addr: SocketAddr,
    trigger: Arc<AtomicI32>,
}

impl ReplyCutter {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let trigger = Arc::new(AtomicI32::new(0));
        let shared = trigger.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(proxy(client, target, shared.clone()));
            }
        });
        Self { addr, trigger }
    }

    /// Loses the replies from the next request with `opcode` on.
    fn arm(&self, opcode: i32) {
        self.trigger.store(opcode, Ordering::SeqCst);
    }

    fn fired(&self) -> bool {
        self.trigger.load(Ordering::SeqCst) == 0
    }
}

async fn proxy(client: TcpStream, target: SocketAddr, trigger: Arc<AtomicI32>) {
    let Ok(server) = TcpStream::connect(target).await else { return };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    // The xid of the request whose reply is lost, once it came by.
    let (cut, cut_now) = watch::channel(None::<i32>);
    let up = async {
        // Whole frames (4-byte length, then xid and opcode), so the trigger sees each request.
        let mut first = true;
        loop {
            let Some((len, frame)) = read_frame(&mut cr).await else { return };
            let field = |at: usize| frame.get(at..at + 4).map_or(0, |b| i32::from_be_bytes(b.try_into().unwrap()));
            let (xid, opcode) = (field(0), field(4));
            if !first && opcode != 0 && trigger.compare_exchange(opcode, 0, Ordering::SeqCst, Ordering::SeqCst).is_ok()
            {
                cut.send_replace(Some(xid));
            }
            first = false;
            if sw.write_all(&len).await.is_err() || sw.write_all(&frame).await.is_err() {
                return;
            }
        }
    };
    let down = async {
        // Whole frames too (the reply header starts with the xid): from the cut on, replies are
        // lost, and the connection closes once the cut request's own reply came from the server,
        // the proof that the server applied it.
        loop {
            let Some((len, frame)) = read_frame(&mut sr).await else { return };
            match *cut_now.borrow() {
                Some(xid) if frame.get(0..4) == Some(&xid.to_be_bytes()[..]) => return,
                Some(_) => continue,
                None => {}
            }
            if cw.write_all(&len).await.is_err() || cw.write_all(&frame).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// One length-prefixed frame: its 4-byte length and its body; `None` once the stream ends.
async fn read_frame(from: &mut (impl AsyncReadExt + Unpin)) -> Option<([u8; 4], Vec<u8>)> {
    let mut len = [0u8; 4];
    from.read_exact(&mut len).await.ok()?;
    let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
    from.read_exact(&mut frame).await.ok()?;
    Some((len, frame))
}

async fn bounded<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(T, f).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

fn framework(proxy: &ReplyCutter, chroot: &str) -> Framework {
    Framework::builder(format!("{}{chroot}", proxy.addr))
        .session_timeout(Duration::from_secs(10))
        .connection_timeout(Duration::from_secs(10))
        .retry_policy(RetryNTimes::new(20, Duration::from_millis(50)))
        .start()
        .expect("start framework")
}

#[tokio::test]
async fn a_take_whose_delete_reply_is_lost_returns_the_item_once() {
    let env = common::embedded("reply_lost").await;
    let proxy = ReplyCutter::start(env.server.as_ref().unwrap().addr()).await;
    let fw = framework(&proxy, &env.chroot);
    fw.wait_until_connected(T).await.unwrap();
    let simple = SimpleDistributedQueue::new(&fw, "/simple");
    simple.offer("one").await.unwrap();
    simple.offer("two").await.unwrap();
    proxy.arm(DELETE);
    assert_eq!(bounded("take", simple.take()).await.unwrap(), "one");
    assert!(proxy.fired(), "the delete's reply was not cut");
    assert_eq!(fw.current_state().epoch, 1, "same session");
    assert_eq!(bounded("take", simple.take()).await.unwrap(), "two");
    assert_eq!(simple.poll().await.unwrap(), None);

    let dq = DistributedQueue::new(&fw, "/dq");
    dq.put(&Bytes::from("one")).await.unwrap();
    dq.put(&Bytes::from("two")).await.unwrap();
    let mut consumer = dq.consumer();
    proxy.arm(DELETE);
    assert_eq!(bounded("take", consumer.next_message()).await.unwrap().items(), [Bytes::from("one")]);
    assert!(proxy.fired(), "the delete's reply was not cut");
    assert_eq!(bounded("take", consumer.next_message()).await.unwrap().items(), [Bytes::from("two")]);
    assert!(fw.client().get_children("/dq").await.unwrap().is_empty(), "left behind");
    // No third message: the consumer waits on its watch, and nothing so far woke it.
    let waiting = tokio::spawn(async move { consumer.next_message().await.map(|m| m.items().to_vec()) });
    common::settled(&fw.client(), 1).await;
    if waiting.is_finished() {
        panic!("delivered twice: {:?}", waiting.await);
    }
    waiting.abort();
    fw.close().await;
}

#[tokio::test]
async fn a_lock_safe_ack_whose_reply_is_lost_succeeds_once() {
    let env = common::embedded("ack_reply_lost").await;
    let proxy = ReplyCutter::start(env.server.as_ref().unwrap().addr()).await;
    let fw = framework(&proxy, &env.chroot);
    fw.wait_until_connected(T).await.unwrap();
    let dq = DistributedQueue::new(&fw, "/q").lock_path("/q-locks");
    dq.put(&Bytes::from("one")).await.unwrap();
    dq.put(&Bytes::from("two")).await.unwrap();
    let mut consumer = dq.consumer();
    let message = bounded("take", consumer.next_message()).await.unwrap();
    assert_eq!(message.items(), [Bytes::from("one")]);
    proxy.arm(MULTI);
    bounded("ack", message.ack()).await.expect("an applied ack whose reply was lost is a success");
    assert!(proxy.fired(), "the ack's reply was not cut");
    let message = bounded("take", consumer.next_message()).await.unwrap();
    assert_eq!(message.items(), [Bytes::from("two")], "the first item came back");
    message.ack().await.unwrap();
    assert!(fw.client().get_children("/q").await.unwrap().is_empty());
    assert!(fw.client().get_children("/q-locks").await.unwrap().is_empty());
    drop(consumer);
    fw.close().await;
}
