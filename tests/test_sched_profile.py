"""sched_profile (jarvis/bench/sched_profile.py): reading `perf sched timehist` and sched_switch
lines as perf prints them, and telling who took a core from a compute thread."""

from jarvis.bench.sched_profile import parse_switches, parse_timehist, summarise

TIMEHIST = """\
           time    cpu  task name                       wait time  sch delay   run time
                        [tid/pid]                          (msec)     (msec)     (msec)
--------------- ------  ------------------------------  ---------  ---------  ---------
    1593.373190 [0001]  python[101/100]                     0.007      0.003     20.065
    1593.373230 [0001]  python[102/100]                     0.065      0.040     19.040
    1593.373239 [0000]  python[100]                         9.040      0.035      0.508
    1593.373306 [0001]  python[101/100]                     0.008      0.005      5.067
    1593.374025 [0000]  kdamond.0[75]                       0.036      0.000      3.028
    1593.376973 [0000]  <idle>                             20.490      0.000      2.947
    1593.399599 [0001]  python[201/200]                    43.698      0.204      0.570
    1593.399600 [0001]  llama-server[103/100]               1.000      0.100      0.400
"""

SWITCHES = """\
      sched:sched_switch: prev_comm=python prev_pid=101 prev_prio=125 prev_state=R ==> next_comm=python next_pid=102 next_prio=125
      sched:sched_switch: prev_comm=python prev_pid=102 prev_prio=125 prev_state=S ==> next_comm=swapper/1 next_pid=0 next_prio=120
      sched:sched_switch: prev_comm=python prev_pid=101 prev_prio=125 prev_state=R+ ==> next_comm=python next_pid=100 next_prio=120
      sched:sched_switch: prev_comm=python prev_pid=102 prev_prio=125 prev_state=R ==> next_comm=kworker/1:0 next_pid=7 next_prio=120
      sched:sched_switch: prev_comm=python prev_pid=101 prev_prio=125 prev_state=R ==> next_comm=python next_pid=201 next_prio=120
      sched:sched_switch: prev_comm=python prev_pid=102 prev_prio=125 prev_state=R ==> next_comm=memfd:sealed-91 next_pid=1227 next_prio=120
      sched:sched_switch: prev_comm=python prev_pid=100 prev_prio=120 prev_state=R ==> next_comm=python next_pid=101 next_prio=125
      sched:sched_migrate_task: comm=perf pid=5681 prio=120 orig_cpu=0 dest_cpu=1
"""


def test_timehist_rows_are_summed_per_thread_and_idle_and_headers_are_left_out():
    times = parse_timehist(TIMEHIST)
    assert set(times) == {100, 101, 102, 75, 201, 103}
    assert round(times[101].run_ms, 3) == 25.132 and round(times[101].delay_ms, 3) == 0.008
    assert times[101].pid == 100 and times[100].pid == 100 and times[75].pid == 75
    assert times[102].sleep_ms == 0.065


def test_the_compute_threads_are_the_longest_running_and_a_core_taken_by_the_other_one_counts_as_compute():
    times = parse_timehist(TIMEHIST)
    prof = summarise(times, parse_switches(SWITCHES), server_pid=100, client_pid=200, threads=2)
    assert prof.compute == [101, 102]
    # 101 -> 102 shares one core; the loop (100) is the server's; 201 the client's; kworker the
    # kernel's; anything else the machine's. The loop's own switch-out is not a compute thread's.
    assert prof.preempted == {"compute": 1, "server": 1, "client": 1, "kernel": 1, "other": 1}
    assert prof.sleeps == 1
    assert round(prof.run_ms, 3) == round(20.065 + 5.067 + 19.040, 3)
    assert round(prof.server_other_ms, 3) == 0.908 and prof.server_other_threads == 2
