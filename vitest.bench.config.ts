import { defineConfig, mergeConfig } from 'vitest/config'
import base from './vitest.config.js'

// Benchmarks that need the test harness (real swarm processes): `npm run bench:failover`. They print figures and
// assert only that the work completed; the test suite never runs them.
export default mergeConfig(base, defineConfig({
  test: {
    include: ['bench/**/*.bench.ts'],
    testTimeout: 1_800_000
  }
}))
