#!/usr/bin/env node
// the `swarm` executable: a committed shim so package managers can link it before the first build
import '../dist/cli.js'
