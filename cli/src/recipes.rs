//! The recipe-aware commands (filled in next).

use corral_recipes::Client;

use crate::connect::Target;
use crate::error::{CliError, CliResult};
use crate::output::Out;

fn later() -> CliResult {
    Err(CliError::failed("not implemented yet"))
}

/// `locks PATH`.
pub(crate) async fn locks(_: &Client, _: &Target, _: &Out, _: &str, _: Option<usize>) -> CliResult {
    later()
}
/// `leader PATH`.
pub(crate) async fn leader(_: &Client, _: &Target, _: &Out, _: &str) -> CliResult {
    later()
}
/// `services`.
pub(crate) async fn services(_: &Client, _: &Out, _: &str, _: Option<&str>) -> CliResult {
    later()
}
/// `queue`.
pub(crate) async fn queue(_: &Client, _: &Out, _: &str, _: Option<&str>) -> CliResult {
    later()
}
/// `barrier`.
pub(crate) async fn barrier(_: &Client, _: &Out, _: &str) -> CliResult {
    later()
}
/// `counter`.
pub(crate) async fn counter(_: &Client, _: &Out, _: &str) -> CliResult {
    later()
}
