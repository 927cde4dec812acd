package host

// Transport says how the plugin's tasks go: "socket" (the Tasks stream on
// the tasks socket), "tasks" (the Tasks stream over gRPC), "run" (a Run
// call each) or "submit" (Submit and Watch).
func Transport(p *Plugin) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.cur != nil && p.cur.tasksSocket != "" && !p.cur.noSocket:
		return "socket"
	case p.cur != nil && p.cur.tasksStream && !p.noTasks:
		return "tasks"
	case !p.noRun:
		return "run"
	}
	return "submit"
}

// TasksSocket is the tasks socket and token the running plugin process gave.
func TasksSocket(p *Plugin) (path, token string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil {
		return "", ""
	}
	return p.cur.tasksSocket, p.cur.tasksToken
}

// LowersOneByOne says whether the plugin answered LowerSteps with
// UNIMPLEMENTED, so that its steps go to Lower one call each.
func LowersOneByOne(p *Plugin) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.noLowerSteps
}
