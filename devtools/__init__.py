"""What the tests, the benchmarks, the chaos suite and the demo share: loopback ports and
processes, /proc readings, command workloads. Not part of any distribution."""
