//! Config watch: a service mirrors a configuration subtree with a cache (one persistent
//! recursive watch) and reacts to each change an operator makes.
//!
//! ```text
//! cargo run --example config_watch                      # on an embedded server, no JVM
//! cargo run --example config_watch -- --zk HOST:PORT    # on a real ZooKeeper (or CORRAL_ZK)
//! cargo run --example config_watch -- --hold            # pause before the changes: make your own
//!                                                       # with `corral set` and watch them arrive
//! ```

mod support;

use corral::cache::{Cache, CacheEvent};
use corral::{CreateMode, Framework};
use futures::StreamExt;
use support::{BoxError, Setup, TIMEOUT};

const CONFIG: &str = "/config/web";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let setup = Setup::start("config_watch").await?;
    let operator = setup.framework().await?;
    let client = operator.client();
    for (path, value) in
        [("/config", ""), (CONFIG, ""), ("/config/web/pool-size", "8"), ("/config/web/log-level", "info")]
    {
        if client.exists(path).await?.is_none() {
            client.create(path, value, CreateMode::Persistent).await?;
        }
    }

    // The service: a cache of the subtree, and a task that prints what changes.
    let service = setup.framework().await?;
    let cache = Cache::builder(&service, CONFIG).start();
    let mut events = cache.events();
    cache.wait_initialized(TIMEOUT).await?;
    for (path, node) in cache.snapshot() {
        setup.say(format!("service starts with {path} = {:?}", String::from_utf8_lossy(&node.data)));
    }

    setup.hold_for(&format!("set {CONFIG}/log-level debug     # or: watch --recursive {CONFIG}")).await?;
    // The operator's changes (`corral set …` does the same from a shell).
    client.set_data("/config/web/pool-size", "16", None).await?;
    client.create("/config/web/feature-x", "on", CreateMode::Persistent).await?;
    client.delete("/config/web/log-level", None).await?;

    let mut seen = 0;
    while seen < 3 {
        let event = tokio::time::timeout(TIMEOUT, events.next()).await?.ok_or("the cache stopped")?;
        seen += 1;
        match event {
            CacheEvent::Created { path, node } => {
                setup.say(format!("service sees {path} created = {:?}", String::from_utf8_lossy(&node.data)));
            }
            CacheEvent::Changed { path, old, new } => setup.say(format!(
                "service sees {path} changed {:?} -> {:?}",
                String::from_utf8_lossy(&old.data),
                String::from_utf8_lossy(&new.data)
            )),
            CacheEvent::Deleted { path, .. } => setup.say(format!("service sees {path} deleted")),
            _ => seen -= 1, // Initialized, connection states
        }
    }
    setup.say(format!("service config now: {:?}", config(&cache)));

    cache.close().await;
    close(&[service, operator]).await;
    setup.close().await;
    Ok(())
}

/// The cached settings as `name=value`.
fn config(cache: &Cache) -> Vec<String> {
    cache
        .snapshot()
        .into_iter()
        .filter(|(path, _)| path != CONFIG)
        .map(|(path, node)| {
            format!("{}={}", path.rsplit('/').next().unwrap_or(&path), String::from_utf8_lossy(&node.data))
        })
        .collect()
}

async fn close(frameworks: &[Framework]) {
    for fw in frameworks {
        fw.close().await;
    }
}
