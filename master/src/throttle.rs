//! Rate limits for warnings a hostile or broken peer can trigger at will, so
//! it cannot flood the log.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lets at most `burst` events through per `window`; counts the rest.
pub struct LogThrottle {
    window: Duration,
    burst: u32,
    state: Mutex<Window>,
}

struct Window {
    started: Option<Instant>,
    passed: u32,
    suppressed: u64,
}

impl LogThrottle {
    /// A throttle passing `burst` events per `window`.
    pub fn new(window: Duration, burst: u32) -> LogThrottle {
        LogThrottle {
            window,
            burst,
            state: Mutex::new(Window {
                started: None,
                passed: 0,
                suppressed: 0,
            }),
        }
    }

    /// Whether an event at `now` may be logged; when it may, also how many
    /// were held back since the last one that was.
    pub fn allow(&self, now: Instant) -> Option<u64> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = st
            .started
            .is_none_or(|start| now.duration_since(start) >= self.window);
        if fresh {
            st.started = Some(now);
            st.passed = 0;
        }
        if st.passed < self.burst {
            st.passed += 1;
            Some(std::mem::take(&mut st.suppressed))
        } else {
            st.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_a_burst_per_window_and_counts_the_rest() {
        let t = LogThrottle::new(Duration::from_secs(1), 2);
        let t0 = Instant::now();
        assert_eq!(t.allow(t0), Some(0));
        assert_eq!(t.allow(t0), Some(0));
        assert_eq!(t.allow(t0), None);
        assert_eq!(t.allow(t0 + Duration::from_millis(500)), None);
        assert_eq!(t.allow(t0 + Duration::from_secs(1)), Some(2));
    }
}
