//! Whether an operation returns its result or a future: one generic return type for both.
//!
//! Every operation builds one `async` future, written once. [`CallMode::Out`] turns it into
//! what the caller gets: on a blocking connection the future is polled once, right there, and
//! its result returned (it is always ready: a blocking connection's statements complete
//! inside the poll); on an async connection the future itself is returned, to be awaited.
//! So `Product::increment_stock(&mut conn, 1, 1)?` and
//! `Product::increment_stock(&mut async_conn, 1, 1).await?` are the same method.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// What an operation returns, per connection kind; see [`Blocking`] and [`Awaited`].
pub trait CallMode {
    /// The result of `F` ([`Blocking`]), or `F` itself ([`Awaited`]).
    type Out<F: Future>;
    /// What [`into_future`](Self::into_future) returns: a ready future, or `F`.
    type Future<F: Future>: Future<Output = F::Output>;
    /// Turns the operation's future into what the caller gets.
    #[doc(hidden)]
    fn drive<F: Future>(future: F) -> Self::Out<F>;
    /// What an operation returned, as a future: for code written once for both kinds of
    /// connection (`C::Mode::into_future(Product::increment_stock(conn, id, 1)).await?`,
    /// with `C: AtomicConnection`), as this crate's own tests do.
    fn into_future<F: Future>(out: Self::Out<F>) -> Self::Future<F>;
}

/// Operations on blocking Diesel connections return their result.
#[derive(Debug, Clone, Copy)]
pub enum Blocking {}

/// Operations on diesel-async connections return a future to await.
#[derive(Debug, Clone, Copy)]
pub enum Awaited {}

impl CallMode for Blocking {
    type Out<F: Future> = F::Output;
    type Future<F: Future> = std::future::Ready<F::Output>;

    fn into_future<F: Future>(out: F::Output) -> Self::Future<F> {
        std::future::ready(out)
    }

    fn drive<F: Future>(future: F) -> F::Output {
        let future = pin!(future);
        match future.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(output) => output,
            // Only a blocking connection's futures get here, and they never wait.
            Poll::Pending => unreachable!("a blocking connection's operation did not complete"),
        }
    }
}

impl CallMode for Awaited {
    type Out<F: Future> = F;
    type Future<F: Future> = F;

    fn into_future<F: Future>(out: F) -> F {
        out
    }

    fn drive<F: Future>(future: F) -> F {
        future
    }
}
