//! Durations and rates of every scenario: the full suite (about 10 minutes on a 2-core
//! machine) and the smoke run (seconds, for CI, with a debug build).

/// What a suite run sends. Rates are offered ops/s over all connections.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    pub warmup_secs: f64,
    pub duration_secs: f64,
    pub keys: u64,
    /// Connections of the fixed-rate runs (scenarios 1, 2, 4), one request in flight each.
    pub connections: usize,
    /// Scenario 1: GET rates, lease vs ReadIndex.
    pub s1_rates: Vec<f64>,
    /// Scenario 2: GET and SET rates, leasekv (1 node) vs redis-server.
    pub s2_rates: Vec<f64>,
    /// Scenario 3: SET/put and GET/range rates, leasekv (3 nodes) vs etcd (3 members).
    pub s3_rates: Vec<f64>,
    pub s3_connections: usize,
    /// Scenario 4: rate of the own-core and other-core runs.
    pub s4_rate: f64,
    /// Scenario 5: read-mostly rate, write-storm rate, measured length, kill time (s into
    /// the measured window), time-series interval.
    pub s5_read_rate: f64,
    pub s5_storm_rate: f64,
    pub s5_storm_connections: usize,
    pub s5_storm_keys: u64,
    pub s5_secs: f64,
    pub s5_kill_at: f64,
    pub s5_interval_ms: u64,
    /// Scenario 6: closed-loop length, open-loop points as fractions of the closed-loop
    /// throughput, length of each point.
    pub s6_closed_secs: f64,
    pub s6_fractions: Vec<f64>,
    pub s6_point_secs: f64,
}

impl Plan {
    pub fn full() -> Plan {
        Plan {
            warmup_secs: 2.0,
            duration_secs: 10.0,
            keys: 10_000,
            // Enough connections that the offered rate, not the connections' one request
            // in flight each, limits the load (fsync batches can fill up).
            connections: 64,
            s1_rates: vec![1000.0, 5000.0, 10_000.0],
            s2_rates: vec![1000.0, 5000.0],
            s3_rates: vec![500.0, 2000.0],
            s3_connections: 64,
            s4_rate: 5000.0,
            s5_read_rate: 3000.0,
            s5_storm_rate: 1000.0,
            s5_storm_connections: 32,
            s5_storm_keys: 4,
            s5_secs: 30.0,
            s5_kill_at: 10.0,
            s5_interval_ms: 100,
            s6_closed_secs: 5.0,
            s6_fractions: vec![0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.2],
            s6_point_secs: 5.0,
        }
    }

    pub fn smoke() -> Plan {
        Plan {
            warmup_secs: 0.3,
            duration_secs: 1.0,
            keys: 200,
            connections: 4,
            s1_rates: vec![300.0],
            s2_rates: vec![300.0],
            s3_rates: vec![200.0],
            s3_connections: 4,
            s4_rate: 300.0,
            s5_read_rate: 300.0,
            s5_storm_rate: 100.0,
            s5_storm_connections: 4,
            s5_storm_keys: 2,
            s5_secs: 4.0,
            s5_kill_at: 1.5,
            s5_interval_ms: 100,
            s6_closed_secs: 1.0,
            s6_fractions: vec![0.5, 1.2],
            s6_point_secs: 1.0,
        }
    }
}
