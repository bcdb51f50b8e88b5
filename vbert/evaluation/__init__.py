"""How well a classifier does, and whether one beats another: the task's scores, the baselines every run reports
(majority class, TF-IDF + logistic regression), and a paired bootstrap over test examples."""
