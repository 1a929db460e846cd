// Package deploy tests the container deployment: TestCompose builds the image
// with scripts/docker-build.sh, brings up the cluster of docker-compose.yml,
// runs its demo, stops the publisher, fetches from the nodes left and tears
// everything down. Its subdirectory demo is the compose demo's command.
package deploy
