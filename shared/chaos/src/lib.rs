//! The chaos runner: scenario files ([`scenario`]), the LitmusChaos driver ([`litmus`]), local
//! faults for services outside Kubernetes ([`local`]), and the run that records a ChaosRun per
//! release.

pub mod litmus;
pub mod local;
#[cfg(feature = "testing")]
pub mod operator;
pub mod resilience;
pub mod run;
pub mod scenario;
