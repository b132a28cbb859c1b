"""Pure parsers and value types: durations, schedules, rates, backoffs, strict JSON, the liveness window.
They import nothing of jobctl but errors."""
