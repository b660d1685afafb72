//! Reading what clients send as ZooKeeper request frames, for [`FaultProxy::hold_from`]: the
//! trigger decides on a request's opcode and path, and the hold starts at that frame.

use super::{REQUEST_HEAD_LIMIT, State};

/// Finds ZooKeeper request frames (a 4-byte big-endian length, then that many bytes) in what a
/// client sends, so that a hold can begin exactly at the request its trigger matches.
///
/// While no trigger waits, bytes pass at once (only frame lengths are followed); while one waits,
/// the start of each frame is kept back until its opcode and path are known.
#[derive(Debug, Default)]
pub(super) struct RequestFrames {
    /// The current frame's first bytes, up to what the decision needs.
    head: Vec<u8>,
    /// Whether a trigger decides on the current frame (its head is kept back meanwhile).
    deciding: bool,
    /// Bytes of the current frame after its head still to come.
    rest: usize,
    /// Whether the handshake (the first frame, never matched) is behind.
    past_handshake: bool,
}

impl RequestFrames {
    /// Splits `input` into pieces to forward, each marked with whether it is held.
    pub(super) fn feed(&mut self, mut input: &[u8], state: &mut State, out: &mut Vec<(bool, Vec<u8>)>) {
        while !input.is_empty() {
            if self.rest > 0 {
                let n = self.rest.min(input.len());
                push(out, state.holding, &input[..n]);
                self.rest -= n;
                input = &input[n..];
                continue;
            }
            if self.head.is_empty() {
                self.deciding = self.past_handshake && state.trigger.is_some() && !state.holding;
            }
            let wanted = head_wanted(&self.head, self.deciding);
            if self.head.len() < wanted {
                let n = (wanted - self.head.len()).min(input.len());
                self.head.extend_from_slice(&input[..n]);
                if !self.deciding {
                    push(out, state.holding, &input[..n]);
                }
                input = &input[n..];
                continue;
            }
            self.end_head(state, out);
        }
        // A frame whose head is complete but which has no bytes after it is decided now, not when
        // the next frame starts.
        if !self.head.is_empty() && self.head.len() >= head_wanted(&self.head, self.deciding) {
            self.end_head(state, out);
        }
    }

    /// The current frame's head is complete: decide on it and go on to its rest.
    fn end_head(&mut self, state: &mut State, out: &mut Vec<(bool, Vec<u8>)>) {
        self.rest = frame_total(&self.head).saturating_sub(self.head.len());
        self.past_handshake = true;
        if self.deciding {
            let (opcode, path) = describe_request(&self.head);
            if state.trigger.as_ref().is_some_and(|trigger| (trigger.0)(opcode, &path)) {
                tracing::info!(opcode, path, "fault proxy: holding from this request");
                state.trigger = None;
                state.holding = true;
                for waker in state.hold_waiters.drain(..) {
                    waker.wake();
                }
            }
            push(out, state.holding, &self.head);
        }
        self.head.clear();
    }
}

/// Appends `bytes` to the pieces to forward, marked `held`.
fn push(out: &mut Vec<(bool, Vec<u8>)>, held: bool, bytes: &[u8]) {
    match out.last_mut() {
        Some((last, piece)) if *last == held => piece.extend_from_slice(bytes),
        _ if bytes.is_empty() => {}
        _ => out.push((held, bytes.to_vec())),
    }
}

/// The whole frame's size, its length prefix included (0 before the prefix is known).
fn frame_total(head: &[u8]) -> usize {
    be_i32(head, 0).map_or(0, |len| 4 + len as u32 as usize)
}

/// How many bytes of a frame's start are needed: its length, and, to decide on it, its opcode
/// and path (bounded by the frame and by [`REQUEST_HEAD_LIMIT`]).
fn head_wanted(head: &[u8], deciding: bool) -> usize {
    if head.len() < 4 || !deciding {
        return 4;
    }
    // length, xid, opcode, path length, path
    let path_end = be_i32(head, 12).map_or(16, |len| 16 + usize::try_from(len).unwrap_or(0));
    path_end.min(frame_total(head)).clamp(4, REQUEST_HEAD_LIMIT)
}

/// `(opcode, path)` of a request frame's head (length prefix included); the path is empty when
/// the request does not start with a whole one.
fn describe_request(head: &[u8]) -> (i32, String) {
    let opcode = be_i32(head, 8).unwrap_or(0);
    let path = be_i32(head, 12)
        .and_then(|len| usize::try_from(len).ok())
        .and_then(|len| head.get(16..16 + len))
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    (opcode, path)
}

fn be_i32(bytes: &[u8], at: usize) -> Option<i32> {
    bytes.get(at..at + 4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}
