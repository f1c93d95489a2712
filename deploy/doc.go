// Package deploy holds the tests of the deployment artefacts: the Helm chart in helm/automation
// (rendered by the helm binary, every object decoded strictly into the Kubernetes API types), the
// compose file and the .dockerignore of the repository root.
//
// It is a module of its own so that the Kubernetes, compose and prometheus-operator types these
// tests need stay out of the service's go.mod (`make test` runs it too).
package deploy
