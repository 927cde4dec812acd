package host

// Transport says how the plugin's tasks go: "tasks" (the Tasks stream),
// "run" (a Run call each) or "submit" (Submit and Watch).
func Transport(p *Plugin) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.cur != nil && p.cur.tasksStream && !p.noTasks:
		return "tasks"
	case !p.noRun:
		return "run"
	}
	return "submit"
}
