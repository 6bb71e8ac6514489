"""Run the simulator alone from a YAML file until SIGTERM (until `esl-callback sim` exists).

python bench/simulator.py sim.yaml
"""

from gevent import monkey

monkey.patch_all()

import signal  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402

from esl_callback.simulator import Simulator, load  # noqa: E402


def main() -> None:
    simulator = Simulator(load(sys.argv[1])).start()
    print(f"simulator listening on {simulator.host}:{simulator.port}", flush=True)
    stop = Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stop.set)
    stop.wait()
    simulator.stop()


if __name__ == "__main__":
    main()
