from ohmni.cli import main

main()
