import { defineConfig } from 'vitest/config'
import base from './vitest.config.js'

// Benchmarks that need the test harness (real swarm processes): `npm run bench:failover`. They print figures and
// assert only that the work completed; the test suite never runs them. The include list replaces the suite's
// (mergeConfig would append to it and run every test as well).
export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: ['bench/**/*.bench.ts'],
    testTimeout: 1_800_000
  }
})
