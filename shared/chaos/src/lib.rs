//! The chaos runner: scenario files ([`scenario`]), the LitmusChaos driver ([`litmus`]), local
//! faults for services outside Kubernetes ([`local`]), and the run that records a ChaosRun per
//! release.
