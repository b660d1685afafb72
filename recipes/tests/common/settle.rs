//! Settling a session before checking that something did *not* happen, without waiting on the
//! wall clock. Included with `#[path = "common/settle.rs"] mod settle;` beside `mod common;`.

use corral_recipes::Client;

/// Returns once everything the server had to tell `client`'s session up to now has reached the
/// client, and the session holds at least `watches` watches (a recipe that is waiting holds the
/// watch it waits on).
///
/// ZooKeeper answers a session's requests in order and sends a watch notification before the
/// reply to any request made after the change: so a `sync` first (what the server did until now,
/// notifications included, has arrived), then a bounded poll until the waiter has set its watch
/// again, then a second `sync` (the replies to what the waiter asked for on its way back to its
/// watch have arrived). A waiter that is still pending afterwards was not woken by anything
/// that happened before this call.
pub(crate) async fn settled(client: &Client, watches: usize) {
    client.sync("/").await.expect("sync");
    crate::common::eventually(&format!("{watches} watch(es) set"), || async {
        client.watcher_count().await >= watches
    })
    .await;
    client.sync("/").await.expect("sync");
}
