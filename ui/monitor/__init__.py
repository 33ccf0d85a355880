"""The System Monitor tab: live charts from the telemetry hub's 1 Hz history, and tables."""
