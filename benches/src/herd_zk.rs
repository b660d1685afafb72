//! Benchmark `herd-zk` (issue 12): the herd against a real ZooKeeper 3.8, with the clients in
//! processes of their own — one process cannot hold 10,000 client sockets and 10,000 server
//! sockets under a 20,000 file limit, and a real fleet is many processes anyway.
//!
//! The parent starts Debian's ZooKeeper through `corral-test-support` (`maxClientCnxns=0`,
//! `tickTime` 2 s, or the server `CORRAL_TEST_ZK` names) and `--herd-processes` children of
//! this binary (`herd-zk-child`), each keeping `--herd-clients / --herd-processes` frameworks
//! with an ephemeral `PersistentNode`. Once every node exists it stops every child with SIGSTOP
//! for longer than the session timeout, waits until ZooKeeper has expired every session (the
//! nodes are gone), and continues them with SIGCONT: every client finds its connection closed,
//! resumes, is told its session expired, and opens a new one — the herd.
//!
//! ZooKeeper keeps no log of handshakes, so the children time them where they are answered:
//! for each framework, the moment it learned of the expiry (LOST, the answer to its resumption)
//! and the moment its new session was established. Windows, peak and mean are computed over
//! those answer times as `herd` does over the embedded server's handshake log. All back is
//! from SIGCONT until every node has been created again (seen by the parent's observer) and
//! every framework reported its new session, whichever is later.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use corral_recipes::persistent_node::PersistentNode;
use corral_recipes::{AddWatchMode, Client, ConnectionState, CreateMode, EventType, Framework};
use futures::StreamExt as _;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::Instant;

use crate::recipes::{RecipeArgs, ctx};
use crate::report::{Reporter, note};

/// Width of a counting window, as in `herd`.
const WINDOW: Duration = Duration::from_millis(100);
/// The limit for every child to start its frameworks and create its nodes.
const START_LIMIT: Duration = Duration::from_secs(300);
/// Frameworks a child starts at once.
const START_BATCH: usize = 50;

/// Microseconds since the Unix epoch: a clock every process of the run shares.
fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// One child process and its pipes.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: tokio::io::Lines<BufReader<ChildStdout>>,
}

impl Worker {
    /// The next line of the protocol, skipping the report's `#` context lines.
    async fn line(&mut self) -> Result<String, String> {
        loop {
            match self.lines.next_line().await.map_err(ctx("read a child's output"))? {
                Some(line) if line.starts_with('#') => {}
                Some(line) => return Ok(line),
                None => return Err("a child ended early (see its stderr)".to_owned()),
            }
        }
    }

    fn signal(&self, signal: &str) -> Result<(), String> {
        let pid = self.child.id().ok_or("a child has already exited")?;
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .map_err(ctx("run kill"))?;
        if status.success() { Ok(()) } else { Err(format!("kill -{signal} {pid} failed")) }
    }
}

/// Runs the real-ZooKeeper herd: `--herd-clients` frameworks in `--herd-processes` processes.
pub(crate) async fn herd_zk(a: &RecipeArgs, r: &Reporter) -> Result<(), String> {
    let Some(zk) = corral_test_support::zookeeper() else {
        return Err("herd-zk needs a real ZooKeeper (Java and Debian's zookeeper, or CORRAL_TEST_ZK)".to_owned());
    };
    let processes = a.herd_processes.max(1);
    let per = a.herd_clients.div_ceil(processes);
    let session = Duration::from_millis(a.herd_session_ms);
    let root = format!("/herd-zk-{}", std::process::id());
    let connect = zk.connect_string();
    note(format_args!(
        "herd-zk: {} frameworks in {processes} processes, session timeout {} ms requested, on ZooKeeper at {connect}",
        per * processes,
        session.as_millis()
    ));
    let observer =
        Client::builder(&connect).session_timeout(Duration::from_secs(30)).connect().await.map_err(ctx("observer"))?;
    observer.create(&root, "", CreateMode::Persistent).await.map_err(ctx("create the root"))?;

    let exe = std::env::current_exe().map_err(ctx("find this binary"))?;
    let mut workers = Vec::with_capacity(processes);
    for p in 0..processes {
        let mut command = Command::new(&exe);
        command
            .arg("--zk")
            .arg(format!("{connect}{root}"))
            .arg("--herd-clients")
            .arg(per.to_string())
            .arg("--herd-session-ms")
            .arg(a.herd_session_ms.to_string())
            .arg("--herd-offset")
            .arg((p * per).to_string());
        if let Some(jitter) = a.resession_jitter_ms {
            command.arg("--resession-jitter-ms").arg(jitter.to_string());
        }
        let mut child = command
            .arg("herd-zk-child")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(ctx("start a child"))?;
        let stdin = child.stdin.take().ok_or("no stdin pipe")?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        workers.push(Worker { child, stdin, lines: BufReader::new(stdout).lines() });
    }
    let ready = async {
        let mut negotiated = Duration::ZERO;
        for w in &mut workers {
            let line = w.line().await?;
            match line.strip_prefix("READY ").and_then(|ms| ms.parse::<u64>().ok()) {
                Some(ms) => negotiated = negotiated.max(Duration::from_millis(ms)),
                None => return Err(format!("a child said {line:?} instead of READY")),
            }
        }
        Ok::<_, String>(negotiated)
    };
    let negotiated = tokio::time::timeout(START_LIMIT, ready)
        .await
        .map_err(|_| "the children did not start in time".to_owned())??;
    let clients = per * processes;
    // Long-lived connections, as in production (no "quick drop" pause).
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut watch =
        observer.add_watch(&root, AddWatchMode::PersistentRecursive).await.map_err(ctx("observer's watch"))?;
    for w in &workers {
        w.signal("STOP")?;
    }
    // ZooKeeper expires a session between its timeout and one tick later; wait until every
    // node is gone (every session expired), bounded.
    let stopped = Instant::now();
    let expire_limit = negotiated * 3 + Duration::from_secs(20);
    loop {
        let left = observer.get_children(&root).await.map_err(ctx("list the nodes"))?.len();
        if left == 0 {
            break;
        }
        if stopped.elapsed() > expire_limit {
            for w in &workers {
                let _ = w.signal("CONT");
            }
            return Err(format!("{left} nodes still there {expire_limit:?} after the stop"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stalled = stopped.elapsed();
    let resumed_us = now_us();
    for w in &workers {
        w.signal("CONT")?;
    }

    let limit = (negotiated * 10).max(Duration::from_secs(60));
    let recreated = tokio::time::timeout(limit, async {
        let mut seen = HashSet::new();
        while seen.len() < clients {
            match watch.next().await {
                Some(event) if event.event_type == EventType::NodeCreated => {
                    seen.insert(event.path);
                }
                Some(event) if event.is_session_end() => break,
                Some(_) => {}
                None => break,
            }
        }
        (seen.len(), now_us())
    })
    .await
    .map_err(|_| format!("not every node came back within {limit:?}"))?;
    if recreated.0 < clients {
        return Err(format!("{} of {clients} nodes came back", recreated.0));
    }

    let mut answers = Vec::with_capacity(clients * 2);
    let mut last_session = 0u64;
    let mut missing = 0usize;
    for w in &mut workers {
        w.stdin.write_all(b"REPORT\n").await.map_err(ctx("ask a child"))?;
        w.stdin.flush().await.map_err(ctx("ask a child"))?;
        loop {
            let line = w.line().await?;
            let mut parts = line.split_whitespace();
            match (parts.next(), parts.next().and_then(|t| t.parse::<u64>().ok())) {
                (Some("LOST"), Some(t)) => answers.push(t),
                (Some("NEW"), Some(t)) => {
                    answers.push(t);
                    last_session = last_session.max(t);
                }
                (Some("MISSING"), Some(n)) => missing += n as usize,
                (Some("DONE"), _) => break,
                _ => return Err(format!("a child said {line:?}")),
            }
        }
    }
    let waited = Instant::now();
    for w in &mut workers {
        drop(w.stdin.write_all(b"EXIT\n").await);
        if tokio::time::timeout(Duration::from_secs(30), w.child.wait()).await.is_err() {
            let _ = w.child.kill().await;
        }
    }
    let _ = observer.delete(&root, None).await;
    observer.close().await;
    if missing > 0 {
        return Err(format!("{missing} frameworks reported no new session"));
    }
    let all_back = Duration::from_micros(recreated.1.max(last_session).saturating_sub(resumed_us));
    report(r, &answers, all_back, negotiated, stalled);
    note(format_args!("herd-zk: {:.1} s to end the children", waited.elapsed().as_secs_f64()));
    Ok(())
}

/// Answers per `width` window from the first one on.
fn windows(times_us: &[u64], width: Duration) -> Vec<usize> {
    let (Some(first), Some(last)) = (times_us.iter().min(), times_us.iter().max()) else { return Vec::new() };
    let w = width.as_micros().max(1) as u64;
    let mut counts = vec![0usize; ((last - first) / w) as usize + 1];
    for t in times_us {
        counts[((t - first) / w) as usize] += 1;
    }
    counts
}

fn report(r: &Reporter, answers: &[u64], all_back: Duration, timeout: Duration, stalled: Duration) {
    let counts = windows(answers, WINDOW);
    let peak = counts.iter().copied().max().unwrap_or(0);
    let mean = if counts.is_empty() { 0.0 } else { answers.len() as f64 / counts.len() as f64 };
    let ratio = if mean > 0.0 { peak as f64 / mean } else { 0.0 };
    r.out("herd_zk_peak_to_mean", format!("{ratio:.2}"), "ratio");
    r.out(
        "herd_zk_all_back_ratio_to_timeout",
        format!("{:.3}", all_back.as_secs_f64() / timeout.as_secs_f64()),
        "ratio",
    );
    r.out("herd_zk_peak", peak, "answers/100ms");
    r.out("herd_zk_mean", format!("{mean:.1}"), "answers/100ms");
    r.out("herd_zk_windows", counts.len(), "windows");
    r.out("herd_zk_answers", answers.len(), "handshakes answered");
    r.out(
        "herd_zk_peak_10ms",
        windows(answers, Duration::from_millis(10)).into_iter().max().unwrap_or(0),
        "answers/10ms",
    );
    r.out("herd_zk_all_back", format!("{:.1}", all_back.as_secs_f64() * 1e3), "ms");
    r.out("herd_zk_session_timeout", timeout.as_millis(), "ms");
    note(format_args!(
        "herd-zk: stopped {:.1} s until every session had expired; answers per 100 ms: {counts:?}",
        stalled.as_secs_f64()
    ));
}

/// A child of `herd-zk`: `--herd-clients` frameworks with ephemeral nodes under the `--zk`
/// chroot; says READY, and on REPORT prints when each learned of its expiry and got its new
/// session; leaves on EXIT (or when its stdin closes).
pub(crate) async fn child(zk: &str, a: &RecipeArgs) -> Result<(), String> {
    let session = Duration::from_millis(a.herd_session_ms);
    let mut fws = Vec::with_capacity(a.herd_clients);
    let mut nodes = Vec::with_capacity(a.herd_clients);
    let mut moments = Vec::with_capacity(a.herd_clients);
    for i in 0..a.herd_clients {
        let mut builder = Framework::builder(zk).session_timeout(session);
        if let Some(jitter) = a.resession_jitter_ms {
            builder = builder.resession_jitter(Duration::from_millis(jitter));
        }
        let fw = builder.start().map_err(ctx("start a framework"))?;
        let path = format!("/n{:05}", a.herd_offset + i);
        nodes.push(PersistentNode::start(&fw, path, CreateMode::Ephemeral, ""));
        let mut changes = fw.state_changes();
        moments.push(tokio::spawn(async move {
            let mut lost = None;
            while let Some(change) = changes.next().await {
                match change.state {
                    ConnectionState::Lost if lost.is_none() => lost = Some(now_us()),
                    s if s.is_connected() && change.epoch >= 2 => return (lost, Some(now_us())),
                    _ => {}
                }
            }
            (lost, None)
        }));
        fws.push(fw);
        // Start in batches: thousands of connects at once overflow ZooKeeper's accept queue
        // (a backlog of 50), and the set-up is not what is measured.
        if nodes.len() % START_BATCH == 0 || nodes.len() == a.herd_clients {
            for node in &nodes[nodes.len().saturating_sub(START_BATCH)..] {
                node.wait_for_initial_create(START_LIMIT).await.map_err(ctx("initial create"))?;
            }
        }
    }
    let mut stdout = tokio::io::stdout();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let negotiated = fws.first().map_or(session, |fw| fw.client().session().timeout);
    stdout.write_all(format!("READY {}\n", negotiated.as_millis()).as_bytes()).await.map_err(ctx("write"))?;
    stdout.flush().await.map_err(ctx("write"))?;
    while let Ok(Some(line)) = lines.next_line().await {
        if line == "REPORT" {
            let mut out = String::new();
            let mut missing = 0;
            for task in moments.drain(..) {
                match tokio::time::timeout(Duration::from_secs(5), task).await {
                    Ok(Ok((lost, Some(new)))) => {
                        if let Some(lost) = lost {
                            out.push_str(&format!("LOST {lost}\n"));
                        }
                        out.push_str(&format!("NEW {new}\n"));
                    }
                    _ => missing += 1,
                }
            }
            out.push_str(&format!("MISSING {missing}\nDONE 0\n"));
            stdout.write_all(out.as_bytes()).await.map_err(ctx("write"))?;
            stdout.flush().await.map_err(ctx("write"))?;
        } else if line == "EXIT" {
            break;
        }
    }
    for node in &nodes {
        node.close().await;
    }
    for fw in &fws {
        fw.close().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_window_of_microseconds() {
        assert_eq!(windows(&[], WINDOW), Vec::<usize>::new());
        assert_eq!(windows(&[5_000, 7_000, 104_000, 350_000], WINDOW), vec![3, 0, 0, 1]);
        assert_eq!(windows(&[0, 99_999], WINDOW), vec![2]);
    }
}
