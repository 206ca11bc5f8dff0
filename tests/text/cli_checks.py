"""What the text CLI tests share: named checks that print ok/FAIL and are counted, and running mz."""
import subprocess

failures, checks = [], [0]


def check(name, ok, detail=""):
    checks[0] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + ("" if ok else f": {detail}"), flush=True)
    if not ok:
        failures.append(name)


def run(mz, args, env):
    return subprocess.run([mz, *args], capture_output=True, text=True, env=env)


def summary(title):
    """Prints the tally; the exit status."""
    print(f"{title}: {checks[0] - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0
