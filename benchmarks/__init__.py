"""Speed benchmarks: `python -m benchmarks.<name>`; each prints a table and writes it to
benchmarks/results/ with the device name and the date. They need torch and PyYAML only
(no Ray, DVC or Hydra), so they run unchanged on a bare GPU machine."""
