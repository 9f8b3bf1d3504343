// Package deploy holds the deployment files; its test checks the
// Kubernetes manifests as the API server would (issue 13, part 5).
package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/osio/osio-bot/config"
)

// object is one decoded manifest.
type object struct {
	file, kind, name string
	v                any
}

// decodeAll decodes every document of every YAML file in dir into its
// Kubernetes API type, rejecting unknown fields (a misspelled key).
func decodeAll(t *testing.T, dir string) []object {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", dir, err)
	}
	var out []object
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(raw), -1) {
			if strings.TrimSpace(regexp.MustCompile(`(?m)^#.*$`).ReplaceAllString(doc, "")) == "" {
				continue
			}
			var head struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			var v any
			switch head.Kind {
			case "Deployment":
				v = &appsv1.Deployment{}
			case "ConfigMap":
				v = &corev1.ConfigMap{}
			case "Secret":
				v = &corev1.Secret{}
			case "Service":
				v = &corev1.Service{}
			case "PersistentVolumeClaim":
				v = &corev1.PersistentVolumeClaim{}
			case "PodDisruptionBudget":
				v = &policyv1.PodDisruptionBudget{}
			default:
				t.Fatalf("%s document %d: kind %q has no type in this test", f, i, head.Kind)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), v); err != nil {
				t.Errorf("%s (%s %s): %v", filepath.Base(f), head.Kind, head.Metadata.Name, err)
				continue
			}
			out = append(out, object{file: filepath.Base(f), kind: head.Kind, name: head.Metadata.Name, v: v})
		}
	}
	return out
}

// Issue 13, acceptance 2 and part 5: every manifest decodes strictly into
// its API type; every Secret key and ConfigMap the Deployment references
// is in the shipped examples; every variable the bot reads is set by the
// Deployment; and the ConfigMap's config, with exactly the environment
// the Deployment gives it from the example Secrets, passes check-config.
func TestManifests(t *testing.T) {
	base := decodeAll(t, "kubernetes")
	for _, variant := range []struct {
		dir  string
		objs []object
	}{{"kubernetes", base}, {"kubernetes-ha", append(decodeAll(t, "kubernetes-ha"), base...)}} {
		t.Run(variant.dir, func(t *testing.T) {
			var dep *appsv1.Deployment
			var cm *corev1.ConfigMap
			secrets := map[string]*corev1.Secret{}
			configMaps := map[string]*corev1.ConfigMap{}
			for _, o := range variant.objs {
				switch v := o.v.(type) {
				case *appsv1.Deployment:
					if dep == nil {
						dep = v
					}
				case *corev1.ConfigMap:
					if _, ok := configMaps[o.name]; !ok {
						configMaps[o.name] = v
					}
				case *corev1.Secret:
					secrets[o.name] = v
				}
			}
			if dep == nil {
				t.Fatal("no Deployment")
			}
			env := map[string]string{}
			c := dep.Spec.Template.Spec.Containers[0]
			for _, e := range c.Env {
				switch {
				case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
					ref := e.ValueFrom.SecretKeyRef
					s, ok := secrets[ref.Name]
					if !ok {
						t.Errorf("%s: Secret %s is not in the shipped examples", e.Name, ref.Name)
						continue
					}
					val, ok := s.StringData[ref.Key]
					if !ok {
						t.Errorf("%s: key %s is not in the example Secret %s", e.Name, ref.Key, ref.Name)
						continue
					}
					env[e.Name] = val
				case e.ValueFrom == nil:
					env[e.Name] = e.Value
				}
			}
			for _, v := range dep.Spec.Template.Spec.Volumes {
				if v.ConfigMap != nil {
					if cm = configMaps[v.ConfigMap.Name]; cm == nil {
						t.Errorf("volume %s: ConfigMap %s is not in the manifests", v.Name, v.ConfigMap.Name)
					}
				}
				if v.PersistentVolumeClaim != nil && variant.dir == "kubernetes-ha" {
					t.Errorf("the HA variant mounts a PVC (%s)", v.PersistentVolumeClaim.ClaimName)
				}
			}
			if cm == nil {
				t.Fatal("the Deployment mounts no ConfigMap")
			}
			// The variables the bot reads (config.Parse's secrets).
			for _, name := range []string{"SLACK_APP_TOKEN", "SLACK_BOT_TOKEN", "SMTP_PASSWORD", "GITLAB_TOKEN", "APP_INTERFACE_TOKEN"} {
				if _, ok := env[name]; !ok {
					t.Errorf("%s is not set by the Deployment", name)
				}
			}
			cfg, err := config.Parse([]byte(cm.Data["config.yaml"]), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
			if err != nil {
				t.Fatal(err)
			}
			if ps := cfg.Validate(); len(ps) != 0 {
				t.Errorf("the ConfigMap's config with the Deployment's environment fails check-config: %v", ps)
			}
			if variant.dir == "kubernetes-ha" {
				if *dep.Spec.Replicas < 2 || dep.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || dep.Spec.Template.Spec.Affinity == nil {
					t.Errorf("HA Deployment: replicas %d, strategy %s, affinity %v", *dep.Spec.Replicas, dep.Spec.Strategy.Type, dep.Spec.Template.Spec.Affinity)
				}
			}
		})
	}
}

// A misspelled field makes the manifest test fail (acceptance 2).
func TestManifestTypoIsCaught(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("kubernetes", "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(raw, []byte("terminationGracePeriodSeconds:"), []byte("terminationGracePeriodSecond:"), 1)
	if bytes.Equal(bad, raw) {
		t.Fatal("the field to misspell is gone")
	}
	var d appsv1.Deployment
	doc := regexp.MustCompile(`(?m)^---\s*$`).Split(string(bad), -1)
	i := slices.IndexFunc(doc, func(s string) bool { return strings.Contains(s, "kind: Deployment") })
	if err := yaml.UnmarshalStrict([]byte(doc[i]), &d); err == nil || !strings.Contains(err.Error(), "terminationGracePeriodSecond") {
		t.Errorf("a misspelled field decodes: %v", err)
	}
}
