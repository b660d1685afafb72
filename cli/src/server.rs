//! The server commands (filled in next).

use std::process::ExitCode;

use crate::connect::Target;
use crate::error::{CliError, CliResult};
use crate::output::Out;

/// `health`.
pub(crate) async fn health(_: &Target, _: &Out) -> CliResult<ExitCode> {
    Err(CliError::failed("not implemented yet"))
}
/// `sessions`.
pub(crate) async fn sessions(_: &Target, _: &Out) -> CliResult {
    Err(CliError::failed("not implemented yet"))
}
