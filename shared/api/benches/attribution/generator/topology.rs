//! Topologies: layered DAGs of a few shapes, where services of a layer depend on services of
//! the layers below.

use super::{Shape, distances};
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;

/// A layered DAG: services of a layer depend on services of the next. `need`: hops that must
/// separate some pair; `storm`: some service needs two dependents.
pub(super) fn topology(rng: &mut StdRng, need: u32, storm: bool) -> (Shape, Vec<Vec<usize>>) {
    for _ in 0..200 {
        let shape = *[
            Shape::Chain,
            Shape::FanOut,
            Shape::FanIn,
            Shape::Diamond,
            Shape::Layered,
        ]
        .choose(rng)
        .unwrap_or(&Shape::Layered);
        let n = rng.random_range(3..=12usize);
        let widths: Vec<usize> = match shape {
            Shape::Chain => vec![1; n],
            Shape::FanOut => {
                let top = rng.random_range(1..=2usize.min(n - 2));
                let mid = rng.random_range(1..=(n - top - 1));
                let rest = n - top - mid;
                [top, mid, rest].into_iter().filter(|w| *w > 0).collect()
            }
            Shape::FanIn => {
                let bottom = rng.random_range(1..=2usize.min(n - 2));
                let mid = rng.random_range(1..=(n - bottom - 1));
                let rest = n - bottom - mid;
                [rest, mid, bottom].into_iter().filter(|w| *w > 0).collect()
            }
            Shape::Diamond => {
                let mut w = vec![1];
                let mut left = n - 1;
                while left > 0 {
                    let side = rng.random_range(2..=3usize).min(left);
                    w.push(side);
                    left -= side;
                    if left > 0 {
                        w.push(1);
                        left -= 1;
                    }
                }
                w
            }
            Shape::Layered => {
                let mut w = Vec::new();
                let mut left = n;
                while left > 0 {
                    let x = rng.random_range(1..=4usize).min(left);
                    w.push(x);
                    left -= x;
                }
                w
            }
        };
        let mut layers: Vec<Vec<usize>> = Vec::new();
        let mut next = 0;
        for w in &widths {
            layers.push((next..next + w).collect());
            next += w;
        }
        let mut depends_on = vec![Vec::new(); n];
        for l in 0..layers.len().saturating_sub(1) {
            let (upper, lower) = (&layers[l], &layers[l + 1]);
            for &s in upper {
                let k = rng.random_range(1..=lower.len().min(3));
                let mut picked: Vec<usize> = lower.choose_multiple(rng, k).copied().collect();
                picked.sort_unstable();
                depends_on[s].extend(picked);
            }
            // Everything below has a dependent.
            for &t in lower {
                if !upper.iter().any(|s| depends_on[*s].contains(&t)) {
                    let s = *upper.choose(rng).unwrap_or(&upper[0]);
                    depends_on[s].push(t);
                }
            }
            // Now and then a shortcut two layers down.
            if l + 2 < layers.len() && rng.random_bool(0.2) {
                let s = *upper.choose(rng).unwrap_or(&upper[0]);
                let t = *layers[l + 2].choose(rng).unwrap_or(&layers[l + 2][0]);
                if !depends_on[s].contains(&t) {
                    depends_on[s].push(t);
                }
            }
        }
        let dist = distances(&depends_on);
        let reachable = need == 0 || (0..n).any(|a| (0..n).any(|c| dist[a][c] == Some(need)));
        let shared =
            !storm || (0..n).any(|c| (0..n).filter(|a| dist[*a][c] == Some(1)).count() >= 2);
        if reachable && shared {
            return (shape, depends_on);
        }
    }
    // Unreachable in practice: a chain of four always works for the hop kinds.
    let n = 4 + usize::from(storm);
    let mut depends_on: Vec<Vec<usize>> = (0..n).map(|i| vec![i + 1]).collect();
    depends_on[n - 1].clear();
    if storm {
        depends_on[0] = vec![2];
    }
    (Shape::Chain, depends_on)
}
