"""Small helpers every layer shares: parameter checks, atomic files, progress bars, timers, metrics."""
