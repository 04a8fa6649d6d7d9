// Package deploy holds the container deployment: docker-compose.yml (at the
// repository root), the example production configuration offboard.yaml, the
// Temporal setup scripts and the health probe. Its test checks that they agree
// with each other and with the code.
package deploy
