//! cmdb states: declarative configuration the Salt way.
//!
//! State files (`.sls`) are YAML mappings `id: {module.function: [args…]}`
//! with `include`, requisites (`require`, `watch`, `onchanges`, `onfail` and
//! their `_in` forms) and a `top.sls` that maps targets to state files.
//! [`sls`] parses them (errors name the file, line and state id), [`order`]
//! sorts them deterministically and refuses cycles before anything runs, and
//! [`engine`] applies them with the [`modules`], in test mode or for real,
//! returning Salt-shaped results.

pub mod engine;
pub mod error;
pub mod modules;
pub mod order;
pub mod pillar;
pub mod roots;
pub mod sls;
pub mod system;
pub mod template;
pub mod top;

pub use engine::{Context, StateResult, apply};
pub use error::StateError;
pub use sls::{Loader, State, compile};
