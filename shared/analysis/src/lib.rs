//! Root-cause analysis over the graph's facts. Everything here is pure: the store gathers the
//! facts, these functions decide, and every decision carries its reasons.

pub mod attribution;
