"""``linewatch demo``: the whole system on one machine, started and stopped as one."""

from cloud.demo.run import DemoSettings, run_demo

__all__ = ["DemoSettings", "run_demo"]
