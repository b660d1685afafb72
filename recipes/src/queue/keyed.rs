//! The part of the keyed queues (id, priority) that is the same for both: one macro.

/// Writes what the queues that are a [`DistributedQueue`] with a key in their node names share:
/// the struct around the queue, `Clone`, `new`, `with_serializer`, `lock_path` and `path`, each
/// documented with a runnable example. The type's own methods (how a key goes into a name, how
/// its consumer orders) are written beside it. [`DistributedIdQueue`](super::DistributedIdQueue)
/// and [`DistributedPriorityQueue`](super::DistributedPriorityQueue) use it.
///
/// - `kind`: how the docs name the queue, at the start of a sentence ("An id queue");
/// - `key`: a key for the examples' `put` (`"job-1"`, `1`).
macro_rules! keyed_queue {
    (
        $(#[$attr:meta])*
        pub struct $name:ident;
        kind = $kind:literal;
        key = $key:literal;
    ) => {
        $(#[$attr])*
        #[derive(Debug)]
        pub struct $name<S: QueueSerializer = BytesSerializer> {
            queue: DistributedQueue<S>,
        }

        impl<S: QueueSerializer> Clone for $name<S> {
            fn clone(&self) -> Self {
                Self { queue: self.queue.clone() }
            }
        }

        impl $name<BytesSerializer> {
            #[doc = concat!($kind, " of raw byte items at `path`. Nothing is sent yet.")]
            ///
            /// # Examples
            ///
            /// ```
            /// # #[tokio::main(flavor = "current_thread")]
            /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
            /// # let server = corral_server::testing::TestingServer::start().await?;
            /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
            #[doc = concat!("use corral_recipes::queue::", stringify!($name), ";")]
            ///
            #[doc = concat!("assert_eq!(", stringify!($name), "::new(&fw, \"/queues/jobs\").path(), \"/queues/jobs\");")]
            /// # fw.close().await;
            /// # Ok(()) }
            /// ```
            pub fn new(fw: &Framework, path: impl Into<String>) -> Self {
                Self { queue: DistributedQueue::new(fw, path) }
            }
        }

        impl<S: QueueSerializer> $name<S> {
            #[doc = concat!($kind, " at `path` whose items `serializer` turns into bytes and back (see")]
            /// [`DistributedQueue::with_serializer`]).
            ///
            /// # Examples
            ///
            /// ```
            /// # #[tokio::main(flavor = "current_thread")]
            /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
            /// # let server = corral_server::testing::TestingServer::start().await?;
            /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
            #[doc = concat!("use corral_recipes::queue::{BytesSerializer, ", stringify!($name), "};")]
            ///
            #[doc = concat!("let queue = ", stringify!($name), "::with_serializer(&fw, \"/queues/jobs\", BytesSerializer);")]
            /// assert_eq!(queue.path(), "/queues/jobs");
            /// # fw.close().await;
            /// # Ok(()) }
            /// ```
            pub fn with_serializer(fw: &Framework, path: impl Into<String>, serializer: S) -> Self {
                Self { queue: DistributedQueue::with_serializer(fw, path, serializer) }
            }

            /// Consumes in Curator's lock-safe mode, as [`DistributedQueue::lock_path`]: an item
            /// is deleted only when its message is acknowledged.
            ///
            /// # Examples
            ///
            /// ```
            /// # #[tokio::main(flavor = "current_thread")]
            /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
            /// # let server = corral_server::testing::TestingServer::start().await?;
            /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
            /// use bytes::Bytes;
            #[doc = concat!("use corral_recipes::queue::", stringify!($name), ";")]
            ///
            #[doc = concat!("let queue = ", stringify!($name), "::new(&fw, \"/queues/jobs\").lock_path(\"/queues/job-locks\");")]
            #[doc = concat!("queue.put(&Bytes::from(\"job\"), ", $key, ").await?;")]
            /// let message = queue.consumer().next_message().await?;
            /// assert!(message.is_locked());
            /// message.ack().await?;
            /// # fw.close().await;
            /// # Ok(()) }
            /// ```
            pub fn lock_path(self, lock_path: impl Into<String>) -> Self {
                Self { queue: self.queue.lock_path(lock_path) }
            }

            /// The queue's path.
            ///
            /// # Examples
            ///
            /// ```
            /// # #[tokio::main(flavor = "current_thread")]
            /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
            /// # let server = corral_server::testing::TestingServer::start().await?;
            /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
            #[doc = concat!("use corral_recipes::queue::", stringify!($name), ";")]
            ///
            #[doc = concat!("assert_eq!(", stringify!($name), "::new(&fw, \"/q\").path(), \"/q\");")]
            /// # fw.close().await;
            /// # Ok(()) }
            /// ```
            pub fn path(&self) -> &str {
                self.queue.path()
            }
        }
    };
}
pub(super) use keyed_queue;
