package kubernetes

import (
	"context"
	"regexp"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"weir.dev/weir/schema"
)

// TestPlanServiceFake: PlanService against client-go's fake clientset: a
// revision not deployed is created, a deployed one is unchanged, one
// scaled by hand shows the drift, and a Secret's values never show.
func TestPlanServiceFake(t *testing.T) {
	ctx := context.Background()
	s, cs := fakeServing()
	p, err := s.PlanService(ctx, testService("v1"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Action != schema.ActionCreate || len(p.Revisions) != 0 || !strings.Contains(p.Note, "replica ratio") {
		t.Errorf("plan before Deploy = %+v", p)
	}
	if got := strings.Join(p.Changes, "\n"); !strings.Contains(got, "+ apps/v1 Deployment ml/churn-api-v1") || !strings.Contains(got, "+ v1 Secret ml/churn-api-v1-env") {
		t.Errorf("changes before Deploy:\n%s", got)
	}
	if _, err := cs.AppsV1().Deployments("ml").Get(ctx, "churn-api-v1", metav1.GetOptions{}); err == nil {
		t.Fatal("PlanService created the Deployment")
	}

	if _, err := s.Deploy(ctx, testService("v1")); err != nil {
		t.Fatal(err)
	}
	p, err = s.PlanService(ctx, testService("v1"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Action != schema.ActionNoop || len(p.Changes) != 0 {
		t.Errorf("plan of the deployed revision = %+v, want noop", p)
	}
	if len(p.Revisions) != 1 || p.Revisions[0].Name != "v1" || p.Revisions[0].Weight != 100 {
		t.Errorf("revisions = %+v", p.Revisions)
	}

	// Someone scales the Deployment by hand.
	d, err := cs.AppsV1().Deployments("ml").Get(ctx, "churn-api-v1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	three := int32(3)
	d.Spec.Replicas = &three
	if _, err := cs.AppsV1().Deployments("ml").Update(ctx, d, metav1.UpdateOptions{FieldManager: "kubectl"}); err != nil {
		t.Fatal(err)
	}
	svc := testService("v1")
	svc.Env["API_TOKEN"] = "n3w"
	p, err = s.PlanService(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(p.Changes, "\n")
	if p.Action != schema.ActionUpdate || !strings.Contains(got, "~ apps/v1 Deployment ml/churn-api-v1\n    spec.replicas: 3 -> 2") {
		t.Errorf("plan after scaling by hand: %s\n%s", p.Action, got)
	}
	if strings.Contains(got, "n3w") || strings.Contains(got, "s3cret") || strings.Contains(got, "bjN3") {
		t.Errorf("a secret value shows in the plan:\n%s", got)
	}
	// The fake keeps stringData; a real server turns it into data.
	if !regexp.MustCompile(`~ v1 Secret ml/churn-api-v1-env\n    (string)?[dD]ata.API_TOKEN: \(sensitive value changes\)`).MatchString(got) {
		t.Errorf("the Secret's change is not listed:\n%s", got)
	}
	// The fake's tracker applies a dry-run apply for real, so that nothing
	// changes is checked against the real API server (TestKubernetesPlanDrift).
}
