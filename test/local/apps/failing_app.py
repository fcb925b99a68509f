raise RuntimeError("database unreachable during INIT")
