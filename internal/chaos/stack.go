package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// The chaos stack's ports: make run's + 24000, beside a make stack (+10000),
// the tests' (+20000) and the bench's (+25000).
const stackOffset = 24000

// stackServer is Temporal as the production stack runs it (scripts/stack.sh
// temporal: PostgreSQL, the compose file's setup scripts, the server built
// from source), state under dir/stack. Killing it stops the whole process
// group, server and PostgreSQL; starting it again resumes from PostgreSQL's
// data. Ready once stack.sh says so (namespace and search attributes set).
func stackServer(root, dir string) (*proc, string, string) {
	state := filepath.Join(dir, "stack")
	hostPort := fmt.Sprintf("127.0.0.1:%d", 7233+stackOffset)
	return &proc{name: "temporal", args: []string{filepath.Join(root, "scripts", "stack.sh"), "temporal"},
		env: []string{"OFFBOARD_STACK_DIR=" + state, fmt.Sprintf("OFFBOARD_STACK_PORT_OFFSET=%d", stackOffset)},
		log: filepath.Join(dir, "temporal.log"),
		ready: func(context.Context) error {
			if _, err := os.Stat(filepath.Join(state, "run", "ready")); err != nil {
				return errors.New("scripts/stack.sh temporal is not ready yet")
			}
			c, err := net.DialTimeout("tcp", hostPort, time.Second)
			if err == nil {
				c.Close()
			}
			return err
		}}, hostPort, "offboard"
}
