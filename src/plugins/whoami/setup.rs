//! `whoami` takes no arguments and no block.

use std::sync::Arc;

use crate::corefile::{Args, Directive, Error, once};
use crate::plugin::DynPlugin;
use crate::plugin::setup::{DynConfig, ParseCtx, PluginConfig, SetupCtx};

#[derive(Debug, PartialEq, Eq)]
pub struct Config;

pub fn parse(dirs: &[Directive], _ctx: &ParseCtx<'_>) -> Result<Box<dyn DynConfig>, Error> {
    let dir = once(super::NAME, dirs)?;
    let args = Args::new(super::NAME, dir);
    args.finish()?;
    args.no_block()?;
    Ok(Box::new(Config))
}

impl PluginConfig for Config {
    fn build(&self, _ctx: &mut SetupCtx<'_>) -> Result<Option<Arc<dyn DynPlugin>>, Error> {
        Ok(Some(Arc::new(super::Whoami)))
    }
}
