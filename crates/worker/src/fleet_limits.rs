//! Fleet-wide rate limits: the model providers' limits are the fleet's, not each
//! worker's. The budgets live in Redis (gate-bus's [`FleetLimits`]); the providers
//! ask them through gate-models' [`FleetLimiter`] trait, which this adapter
//! implements, so neither crate knows the other.

use std::sync::Arc;
use std::time::Duration;

use gate_bus::{Admission, Budget, FleetLimits, Redis};
use gate_models::{Analyzer, BoxFuture, FleetAdmission, FleetBudget, FleetLimiter};

/// gate-bus's Redis budgets behind gate-models' trait.
struct RedisFleetLimiter {
    limits: FleetLimits,
}

fn budget(budget: &FleetBudget) -> Budget<'static> {
    Budget {
        name: budget.name,
        per_minute: budget.per_minute,
        amount: budget.amount,
    }
}

impl FleetLimiter for RedisFleetLimiter {
    fn acquire<'a>(
        &'a self,
        scope: &'a str,
        budgets: &'a [FleetBudget],
    ) -> BoxFuture<'a, FleetAdmission> {
        Box::pin(async move {
            let budgets: Vec<Budget<'_>> = budgets.iter().map(budget).collect();
            match self.limits.acquire(scope, &budgets).await {
                Ok(Admission::Admitted) => FleetAdmission::Admitted,
                Ok(Admission::Wait(wait)) => FleetAdmission::Wait(wait),
                Ok(Admission::RedisDown) => FleetAdmission::Unavailable,
                Err(error) => {
                    gate_telemetry::events::RedisFailed.emit();
                    tracing::debug!(%error, scope, "fleet rate limit: redis failed");
                    FleetAdmission::Unavailable
                }
            }
        })
    }

    fn settle<'a>(
        &'a self,
        scope: &'a str,
        reserved: FleetBudget,
        actual: u64,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Err(error) = self.limits.settle(scope, budget(&reserved), actual).await {
                gate_telemetry::events::RedisFailed.emit();
                tracing::debug!(%error, scope, "fleet rate limit: settling tokens failed");
            }
        })
    }

    fn pause<'a>(&'a self, scope: &'a str, duration: Duration) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Err(error) = self.limits.pause(scope, duration).await {
                gate_telemetry::events::RedisFailed.emit();
                tracing::debug!(%error, scope, "fleet rate limit: pausing the fleet failed");
            }
        })
    }
}

/// Makes every analyzer's limits the fleet's, through `redis` ([`run`](crate::run)
/// does it at start-up; exported for tests and embedders). While Redis is down, it
/// is tried again once per `retry_interval`, and each provider keeps to its
/// configured share of its limits meanwhile.
pub fn share_fleet_limits(
    redis: &Redis,
    retry_interval: Duration,
    analyzers: &[Box<dyn Analyzer>],
) {
    let fleet: Arc<dyn FleetLimiter> = Arc::new(RedisFleetLimiter {
        limits: redis.fleet_limits(retry_interval),
    });
    for analyzer in analyzers {
        analyzer.share_limits(Arc::clone(&fleet));
    }
}
