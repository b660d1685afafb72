//! Distributed lock: three workers share one Curator-compatible mutex, and each write they make
//! while holding it is fenced (it commits only if their lock node is still there).
//!
//! ```text
//! cargo run --example distributed_lock                      # on an embedded server, no JVM
//! cargo run --example distributed_lock -- --zk HOST:PORT    # on a real ZooKeeper (or CORRAL_ZK)
//! cargo run --example distributed_lock -- --hold            # keep a holder and two waiters until Enter,
//!                                                           # to look at them with `corral locks`
//! ```

mod support;

use corral::lock::Mutex;
use corral::{CreateMode, Framework, Op};
use support::{BoxError, Setup, TIMEOUT, until_children};

const LOCK: &str = "/locks/jobs";
const LEDGER: &str = "/jobs/ledger";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let setup = Setup::start("distributed_lock").await?;
    // The shared resource: a ledger node the lock holders append to.
    let admin = setup.framework().await?;
    let client = admin.client();
    for path in ["/jobs", LEDGER] {
        if client.exists(path).await?.is_none() {
            client.create(path, "", CreateMode::Persistent).await?;
        }
    }

    // Three workers, each on its own session, take turns twice.
    let mut workers = Vec::new();
    for worker in 1..=3 {
        let fw = setup.framework().await?;
        workers.push(tokio::spawn(async move {
            let mutex = Mutex::new(&fw, LOCK);
            let mut tokens = Vec::new();
            for round in 1..=2 {
                let guard = mutex.acquire().await?;
                // A fenced write: the check of our lock node and the update commit together or
                // not at all, so a holder whose session ended cannot write after the next one got in.
                let client = fw.client();
                let (ledger, stat) = client.get_data(LEDGER).await?;
                let line = format!("worker-{worker} round-{round} token {}\n", guard.fencing_token());
                let ledger = format!("{}{line}", String::from_utf8_lossy(&ledger));
                client.multi(vec![guard.fencing_check(), Op::set_data(LEDGER, ledger, Some(stat.version))]).await?;
                tokens.push(guard.fencing_token());
                guard.release().await?;
            }
            fw.close().await;
            Ok::<_, BoxError>((worker, tokens))
        }));
    }
    for worker in workers {
        let (worker, tokens) = tokio::time::timeout(TIMEOUT, worker).await???;
        setup.say(format!("worker {worker} held the lock twice, fencing tokens {tokens:?}"));
    }
    let (ledger, _) = client.get_data(LEDGER).await?;
    setup.say(format!("the ledger, written only by holders, in lock order:\n{}", String::from_utf8_lossy(&ledger)));

    if setup.hold {
        hold(&setup, &admin).await?;
    }
    admin.close().await;
    setup.close().await;
    Ok(())
}

/// One holder and two waiters, kept until Enter.
async fn hold(setup: &Setup, admin: &Framework) -> Result<(), BoxError> {
    let holder = setup.framework().await?;
    let guard = Mutex::new(&holder, LOCK).acquire().await?;
    let mut waiters = Vec::new();
    for n in 1..=2 {
        let fw = setup.framework().await?;
        let mutex = Mutex::new(&fw, LOCK);
        waiters.push((fw, tokio::spawn(async move { mutex.acquire().await })));
        until_children(admin, LOCK, n + 1).await?; // queued in this order
    }
    setup.hold_for(&format!("locks {LOCK}")).await?;
    guard.release().await?;
    for (fw, waiter) in waiters {
        tokio::time::timeout(TIMEOUT, waiter).await???.release().await?;
        fw.close().await;
    }
    holder.close().await;
    Ok(())
}
