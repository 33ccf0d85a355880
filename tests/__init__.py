"""The test suite is a package so that every helper has one import name: `tests.support.<module>`,
`tests.ui_support`, `tests.fake_nvml`, `tests.hub_server` (a module reached by two names would load twice)."""
