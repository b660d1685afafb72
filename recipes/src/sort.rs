//! Curator's ordering of lock-like children (`StandardLockInternalsDriver.fixForSorting`): by
//! the part of the name after the last occurrence of the lock name (the sequence number),
//! whatever protected prefix comes before it. The locks, latches, semaphores and queues use it
//! to find their place in line; tools that read a live ensemble (the `corral` command) use it
//! to show the line in the order the recipes see it.

/// Curator's sort key: the substring after the last `lock_name` in `child`, or the whole name
/// when `lock_name` does not occur (foreign nodes take part in the ordering, as in Curator).
///
/// # Examples
///
/// ```
/// use corral_recipes::sort::sort_key;
///
/// let protected = "_c_9b1c0a2e-1111-4111-8111-111111111111-lock-0000000003";
/// assert_eq!(sort_key(protected, "lock-"), "0000000003");
/// assert_eq!(sort_key("foreign", "lock-"), "foreign");
/// ```
pub fn sort_key<'a>(child: &'a str, lock_name: &str) -> &'a str {
    match child.rfind(lock_name) {
        Some(i) => &child[i + lock_name.len()..],
        None => child,
    }
}

/// Sorts `children` with Curator's rule for `lock_name` (see [`sort_key`]): the first is the
/// holder (or the leader), each of the others waits for the one before it.
///
/// # Examples
///
/// ```
/// use corral_recipes::lock::LOCK_NAME;
/// use corral_recipes::sort::sort_children;
///
/// let mut line = vec![
///     "_c_9b1c0a2e-1111-4111-8111-111111111111-lock-0000000003".to_owned(),
///     "lock-0000000001".to_owned(),
/// ];
/// sort_children(&mut line, LOCK_NAME);
/// assert_eq!(line[0], "lock-0000000001");
/// ```
pub fn sort_children(children: &mut [String], lock_name: &str) {
    children.sort_by(|a, b| sort_key(a, lock_name).cmp(sort_key(b, lock_name)));
}

/// The children of `path` (unsorted), or none if `path` does not exist, with the framework's
/// retries.
pub(crate) async fn children_or_empty(fw: &corral_core::Framework, path: &str) -> corral_core::Result<Vec<String>> {
    fw.with_retry(|client| async move {
        match client.get_children(path).await {
            Err(e) if e.is_no_node() => Ok(Vec::new()),
            other => other,
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_by_sequence_whatever_the_prefix() {
        let mut children = vec![
            "_c_9b1c0a2e-1111-4111-8111-111111111111-lock-0000000003".to_string(),
            "lock-0000000001".to_string(),
            "_c_00000000-0000-4000-8000-000000000000-lock-0000000002".to_string(),
        ];
        sort_children(&mut children, "lock-");
        let keys: Vec<&str> = children.iter().map(|c| sort_key(c, "lock-")).collect();
        assert_eq!(keys, ["0000000001", "0000000002", "0000000003"]);
        assert_eq!(sort_key("foreign", "lock-"), "foreign");
    }
}
